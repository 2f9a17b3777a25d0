/*
 * TFLM inference backend: the shipped int8 model in the TFLM interpreter, with
 * a static arena and an op resolver holding only the model's five ops
 * (CONV_2D, FULLY_CONNECTED, MEAN, RESHAPE, SOFTMAX). C++17 inside, C outside.
 *
 * Not built in CI: TFLM's sources cannot be fetched on the build machine. The
 * board port (boards/nano33ble_sense) builds it with the TFLM Arduino library;
 * mcu_firmware/README.md gives the commands.
 */
#ifndef TGW_TFLM_H
#define TGW_TFLM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    size_t window_len;  /* int8 input values the model takes */
    uint8_t n_outputs;  /* classes */
    size_t arena_used;  /* after init: what the interpreter took of the arena */
    const char *error;  /* after a failed init: why */
} tgw_tflm_t;

/* Builds the interpreter on the model flatbuffer (16-byte aligned, in flash)
 * and the caller's arena (16-byte aligned), and checks that the model is the
 * one the node expects: int8 input of window_len values, int8 softmax output
 * of n_outputs classes (scale 1/256, zero point -128). One model per build. */
bool tgw_tflm_init(tgw_tflm_t *t, const uint8_t *model, uint8_t *arena, size_t arena_size,
                   size_t window_len, uint8_t n_outputs);

/* tgw_model_t.invoke with ctx = the tgw_tflm_t. */
bool tgw_tflm_invoke(void *ctx, const int8_t *window, size_t len, uint16_t *scores);

#ifdef __cplusplus
}
#endif

#endif
