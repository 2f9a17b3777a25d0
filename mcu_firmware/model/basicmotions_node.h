/* The shipped BasicMotions model as the node core sees it (tgw_model_t): its id,
 * hash, labels and input quantisation from basicmotions_model.h, with the
 * inference backend the board chose (TFLM on a board, replay under QEMU). */
#ifndef BASICMOTIONS_NODE_H
#define BASICMOTIONS_NODE_H

#include "tgw_node.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef bool (*basicmotions_invoke_fn)(void *ctx, const int8_t *window, size_t len,
                                       uint16_t *scores);

void basicmotions_node_model(tgw_model_t *model, void *backend, basicmotions_invoke_fn invoke);

#ifdef __cplusplus
}
#endif

#endif
