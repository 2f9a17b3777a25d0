/*
 * Replay inference backend: the outputs the TFLM interpreter computed for a
 * known set of windows, looked up by the window's exact bytes.
 *
 * It runs where TFLM's sources cannot be built (the QEMU Cortex-M4 image in
 * CI): the node sends the windows of the shipped data set, and for each it
 * reports what TFLM said (golden.json), so the gateway's verification sees a
 * node that is right exactly where the real one would be. A window the table
 * does not hold is an inference failure, never a guess.
 */
#ifndef TGW_REPLAY_H
#define TGW_REPLAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const int8_t *windows; /* count x window_len int8 values */
    const int8_t *outputs; /* count x n_outputs: TFLM's int8 softmax outputs */
    uint16_t count;
    uint16_t window_len;
    uint8_t n_outputs;
    uint16_t next;   /* tried first: a stream plays the windows in order */
    uint32_t misses; /* windows not in the table */
} tgw_replay_t;

/* tgw_model_t.invoke with ctx = a tgw_replay_t. */
bool tgw_replay_invoke(void *ctx, const int8_t *window, size_t len, uint16_t *scores);

#ifdef __cplusplus
}
#endif

#endif
