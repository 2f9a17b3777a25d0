"""Trains the shipped verification model: a small int8 1-D CNN on BasicMotions.

BasicMotions (bundled in the ``aeon`` package, no download) is smartwatch data: a
3-axis accelerometer and a 3-axis gyroscope at 10 Hz, windows of 100 samples, four
activities. 40 windows train, the other 40 are held out.

Writes, from nothing but the data set and fixed seeds:

- ``gateway/models/basicmotions/model.tflite``: int8 in, int8 out, batch 1
- ``gateway/models/basicmotions/model.json``: labels, tensor shapes and quantisation,
  sha256 and model id, tensor arena size, size, accuracy and confusion matrices
- ``gateway/models/basicmotions/golden.json``: the quantised held-out windows and
  perturbed copies of them, each with the output of the TFLM interpreter
- ``mcu_firmware/model/basicmotions_model.{c,h}``: the model as a C array

Run it with ``bash training/train.sh`` (its own pinned environment). Neither the
gateway nor CI ever trains: the outputs are committed.
"""

from __future__ import annotations

import os

# before TensorFlow is imported: one thread and no oneDNN, so that two runs on one
# machine convert to the same bytes
os.environ["TF_ENABLE_ONEDNN_OPTS"] = "0"
os.environ["TF_DETERMINISTIC_OPS"] = "1"
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
os.environ["CUDA_VISIBLE_DEVICES"] = ""
os.environ["PYTHONHASHSEED"] = "0"

import contextlib
import hashlib
import json
import sys
from collections.abc import Callable, Iterator
from importlib.metadata import version
from pathlib import Path

import numpy as np
import tensorflow as tf
from aeon.datasets import load_basic_motions
from tflite_micro.python.tflite_micro import runtime as tflm

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "gateway" / "models" / "basicmotions"
FIRMWARE = ROOT / "mcu_firmware" / "model"
NAME = "basicmotions-cnn"
SEED = 20261201
EPOCHS = 150
PERTURBED_PER_WINDOW = 2  # perturbed copies of each held-out window in golden.json


def load() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    x_train, y_train = load_basic_motions(split="train")
    x_test, y_test = load_basic_motions(split="test")
    labels = sorted(set(y_train))
    index = {name: i for i, name in enumerate(labels)}

    # (windows, channels, time) -> (windows, time, channels): the order a node fills
    # its buffer in, one sample of all six axes after the other
    def prep(x: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(x.transpose(0, 2, 1), dtype=np.float32)

    def idx(y: np.ndarray) -> np.ndarray:
        return np.array([index[v] for v in y], dtype=np.int64)

    return prep(x_train), idx(y_train), prep(x_test), idx(y_test), labels


def build(n_labels: int) -> tf.keras.Model:
    inputs = tf.keras.Input(shape=(100, 6), batch_size=1, name="window")
    x = tf.keras.layers.Conv1D(8, 5, strides=2, activation="relu")(inputs)
    x = tf.keras.layers.Conv1D(16, 5, strides=2, activation="relu")(x)
    x = tf.keras.layers.GlobalAveragePooling1D()(x)
    x = tf.keras.layers.Dense(n_labels)(x)
    outputs = tf.keras.layers.Softmax()(x)
    return tf.keras.Model(inputs, outputs)


def train(x: np.ndarray, y: np.ndarray, n_labels: int) -> tf.keras.Model:
    model = build(n_labels)
    model.compile(
        optimizer=tf.keras.optimizers.Adam(0.01),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    # batch_size 1 matches the exported input shape; 40 windows make this quick
    model.fit(x, y, epochs=EPOCHS, batch_size=1, shuffle=True, verbose=0)
    return model


def convert(model: tf.keras.Model, x_train: np.ndarray) -> bytes:
    def representative():  # type: ignore[no-untyped-def]
        for window in x_train:
            yield [window[None]]

    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = tf.int8
    converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def quantise(x: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
    """What a node does with a window: round to the input tensor's int8 steps."""
    return np.clip(np.round(x / scale) + zero_point, -128, 127).astype(np.int8)


def tflm_outputs(model: bytes, windows: np.ndarray) -> np.ndarray:
    interp = tflm.Interpreter.from_bytes(model)
    out = []
    for q in windows:
        interp.set_input(q[None], 0)
        interp.invoke()
        out.append(interp.get_output(0)[0].copy())
    return np.array(out, dtype=np.int8)


def arena_bytes(model: bytes, sample: np.ndarray) -> int:
    """The smallest tensor arena TFLM runs the model in (on this host: a 32-bit
    microcontroller's pointers are smaller, so this is an upper bound there)."""

    def fits(size: int) -> bool:
        try:
            interp = tflm.Interpreter.from_bytes(model, arena_size=size)
            interp.set_input(sample[None], 0)
            interp.invoke()
        except (RuntimeError, ValueError):
            return False
        return True

    lo, hi = 256, 1 << 20
    with _quiet():
        return _smallest(fits, lo, hi)


def _smallest(fits: Callable[[int], bool], lo: int, hi: int) -> int:
    if not fits(hi):
        raise SystemExit("the model does not run in a 1 MiB arena")
    while hi - lo > 16:
        mid = (lo + hi) // 2
        if fits(mid):
            hi = mid
        else:
            lo = mid
    return hi


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """TFLM prints each failed allocation of the search to the process's stderr."""
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, "wb") as null:
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def confusion(truth: np.ndarray, pred: np.ndarray, n: int) -> list[list[int]]:
    m = np.zeros((n, n), dtype=np.int64)
    for t, p in zip(truth, pred, strict=True):
        m[t, p] += 1
    return m.tolist()


def perturbed(windows: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Noisy and attenuated copies of the held-out windows: inputs near the model's
    decision boundaries, where runtimes that round differently disagree first."""
    rng = np.random.default_rng(SEED)
    out, src = [], []
    for q, label in zip(windows, labels, strict=True):
        for k in range(PERTURBED_PER_WINDOW):
            noise = rng.integers(-24, 25, size=q.shape)
            gain = 0.5 if k else 1.0
            w = np.clip(np.round(q.astype(np.float64) * gain) + noise, -128, 127)
            out.append(w.astype(np.int8))
            src.append(label)
    return np.array(out), np.array(src)


def _one_window_a_line(golden: dict[str, object]) -> str:
    """JSON with one window per line, so that a change to the set reads as a diff."""
    head = {k: v for k, v in golden.items() if k != "windows"}
    windows = golden["windows"]
    assert isinstance(windows, list)
    lines = [json.dumps(head)[:-1] + ', "windows": [']
    lines += [json.dumps(w) + ("," if i < len(windows) - 1 else "") for i, w in enumerate(windows)]
    return "\n".join([*lines, "]}", ""])


FAULTS = (
    ("accelerometer stuck", lambda w, zp: _axes(w, (0, 1, 2), zp)),
    ("gyroscope stuck", lambda w, zp: _axes(w, (3, 4, 5), zp)),
    ("axis saturated", lambda w, zp: _axes(w, (0,), 127)),
    ("axes swapped", lambda w, zp: w[:, ::-1].copy()),
    ("bytes shifted", lambda w, zp: np.roll(w.reshape(-1), 1).reshape(w.shape)),
)


def _axes(w: np.ndarray, axes: tuple[int, ...], value: int) -> np.ndarray:
    w = w.copy()
    w[:, list(axes)] = value
    return w


def corrupted(
    model: bytes, windows: np.ndarray, outs: np.ndarray, zp: int
) -> list[dict[str, object]]:
    """For each held-out window, the first sensor or firmware fault of FAULTS that
    changes TFLM's label: what a node with that fault sends beside the label it
    computed from the good window. A window no fault changes has no entry."""
    found = []
    for i, (q, good) in enumerate(zip(windows, outs, strict=True)):
        for fault, apply in FAULTS:
            w = apply(q, zp)
            out = tflm_outputs(model, w[None])[0]
            if out.argmax() != good.argmax():
                found.append(
                    {
                        "set": "corrupted",
                        "of": i,
                        "fault": fault,
                        "window_hex": w.tobytes().hex(),
                        "tflm_output": [int(v) for v in out],
                    }
                )
                break
    return found


def c_array(model: bytes, meta: dict[str, object]) -> tuple[str, str]:
    ident = "basicmotions_model"
    labels = meta["labels"]
    assert isinstance(labels, list)
    inp = meta["input"]
    assert isinstance(inp, dict)
    header = "\n".join(
        [
            "/* Generated by training/train_basicmotions.py: do not edit. */",
            "#ifndef BASICMOTIONS_MODEL_H",
            "#define BASICMOTIONS_MODEL_H",
            "",
            "#include <stdint.h>",
            "",
            f"#define BASICMOTIONS_MODEL_SIZE {len(model)}u",
            f"#define BASICMOTIONS_ARENA_BYTES {meta['arena_bytes']}u",
            f"#define BASICMOTIONS_MODEL_ID 0x{meta['model_id']}u",
            "#define BASICMOTIONS_WINDOW_SAMPLES 100u",
            "#define BASICMOTIONS_WINDOW_AXES 6u",
            f"#define BASICMOTIONS_INPUT_SCALE {inp['scale']!r}f",
            f"#define BASICMOTIONS_INPUT_ZERO_POINT ({inp['zero_point']})",
            f"#define BASICMOTIONS_LABEL_COUNT {len(labels)}u",
            "",
            f"extern const uint8_t {ident}[BASICMOTIONS_MODEL_SIZE];",
            f"extern const uint8_t {ident}_sha256[32];",
            "extern const char *const basicmotions_labels[BASICMOTIONS_LABEL_COUNT];",
            "",
            "#endif",
            "",
        ]
    )
    rows = [
        "  " + ", ".join(f"0x{b:02x}" for b in model[i : i + 12]) + ","
        for i in range(0, len(model), 12)
    ]
    digest = hashlib.sha256(model).digest()
    source = "\n".join(
        [
            "/* Generated by training/train_basicmotions.py: do not edit. */",
            '#include "basicmotions_model.h"',
            "",
            "/* TFLM reads the flatbuffer in place: 16-byte alignment as its tensors want */",
            f"const uint8_t {ident}[BASICMOTIONS_MODEL_SIZE] __attribute__((aligned(16))) = {{",
            *rows,
            "};",
            "",
            f"const uint8_t {ident}_sha256[32] = {{",
            "  " + ", ".join(f"0x{b:02x}" for b in digest),
            "};",
            "",
            "const char *const basicmotions_labels[BASICMOTIONS_LABEL_COUNT] = {",
            "  " + ", ".join(f'"{name}"' for name in labels),
            "};",
            "",
        ]
    )
    return header, source


def main() -> int:
    tf.keras.utils.set_random_seed(SEED)
    tf.config.experimental.enable_op_determinism()
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.threading.set_intra_op_parallelism_threads(1)

    x_train, y_train, x_test, y_test, labels = load()
    model = train(x_train, y_train, len(labels))
    float_pred = model.predict(x_test, batch_size=1, verbose=0).argmax(axis=1)
    tflite = convert(model, x_train)

    interp = tf.lite.Interpreter(model_content=tflite)
    (inp,) = interp.get_input_details()
    (out,) = interp.get_output_details()
    in_scale, in_zp = (float(v) for v in inp["quantization"])
    out_scale, out_zp = (float(v) for v in out["quantization"])
    q_test = quantise(x_test, in_scale, int(in_zp))
    golden_out = tflm_outputs(tflite, q_test)
    int8_pred = golden_out.argmax(axis=1)
    p_windows, p_labels = perturbed(q_test, y_test)
    p_out = tflm_outputs(tflite, p_windows)

    digest = hashlib.sha256(tflite).digest()
    meta: dict[str, object] = {
        "name": NAME,
        "file": "model.tflite",
        "sha256": digest.hex(),
        "model_id": digest[3::-1].hex(),  # the node's u32 model id: the first 4 bytes, LE
        "size_bytes": len(tflite),
        "arena_bytes": arena_bytes(tflite, q_test[0]),
        "labels": labels,
        "input": {
            "dims": [int(d) for d in inp["shape"][1:]],
            "layout": "time x axes (acc x, y, z, gyro x, y, z), 10 Hz",
            "scale": in_scale,
            "zero_point": int(in_zp),
        },
        "output": {"scale": out_scale, "zero_point": int(out_zp)},
        "accuracy": {
            "held_out_windows": len(y_test),
            "float": round(float((float_pred == y_test).mean()), 4),
            "int8_tflm": round(float((int8_pred == y_test).mean()), 4),
        },
        "confusion": {
            "rows": "true label, columns: predicted (label order as in labels)",
            "float": confusion(y_test, float_pred, len(labels)),
            "int8_tflm": confusion(y_test, int8_pred, len(labels)),
        },
        "trained_with": {
            p: version(p) for p in ("tensorflow-cpu", "aeon", "tflite-micro", "numpy")
        },
        "seed": SEED,
        "epochs": EPOCHS,
    }

    def entries(
        windows: np.ndarray, truth: np.ndarray, outs: np.ndarray, kind: str
    ) -> list[dict[str, object]]:
        return [
            {
                "set": kind,
                "true_label": int(t),
                "window_hex": w.tobytes().hex(),
                "tflm_output": [int(v) for v in o],
            }
            for w, t, o in zip(windows, truth, outs, strict=True)
        ]

    golden = {
        "model_sha256": digest.hex(),
        "oracle": f"tflite-micro {version('tflite-micro')} (the TFLM interpreter)",
        "windows": entries(q_test, y_test, golden_out, "held_out")
        + entries(p_windows, p_labels, p_out, "perturbed")
        + corrupted(tflite, q_test, golden_out, int(in_zp)),
    }

    OUT.mkdir(parents=True, exist_ok=True)
    FIRMWARE.mkdir(parents=True, exist_ok=True)
    (OUT / "model.tflite").write_bytes(tflite)
    (OUT / "model.json").write_text(json.dumps(meta, indent=2) + "\n")
    (OUT / "golden.json").write_text(_one_window_a_line(golden))
    header, source = c_array(tflite, meta)
    (FIRMWARE / "basicmotions_model.h").write_text(header)
    (FIRMWARE / "basicmotions_model.c").write_text(source)
    acc = meta["accuracy"]
    print(f"{NAME}: {len(tflite)} bytes, sha256 {digest.hex()}, arena {meta['arena_bytes']} B")
    print(f"held-out accuracy: float {acc['float']}, int8 (TFLM) {acc['int8_tflm']}")  # type: ignore[index]
    return 0


if __name__ == "__main__":
    sys.exit(main())
