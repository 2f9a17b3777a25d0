#!/usr/bin/env bash
# Copies the portable sources into the sketch (tinyml_node/src/tgw/), where the Arduino
# build compiles them: the protocol library, the node core, the TFLM backend and the
# model's C array. Run it again after changing any of them; the copy is not committed.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
fw=$(cd "$here/../.." && pwd)
dest=$here/tinyml_node/src/tgw
rm -rf "$dest"
mkdir -p "$dest"
cp "$fw"/protocol/include/*.h "$fw"/protocol/src/*.[ch] "$dest"/
cp "$fw"/node/include/*.h "$fw"/node/src/*.[ch] "$dest"/
cp "$fw"/backends/tflm/tgw_tflm.h "$fw"/backends/tflm/tgw_tflm.cc "$dest"/
cp "$fw"/model/basicmotions_*.[ch] "$dest"/
# the Arduino build compiles .cc files only as .cpp
mv "$dest"/tgw_tflm.cc "$dest"/tgw_tflm.cpp
echo "sources copied to $dest"
