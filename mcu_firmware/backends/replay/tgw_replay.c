/* Replay backend: TFLM's recorded outputs for the windows it was given. */
#include "tgw_replay.h"

#include <string.h>

#include "tgw_node.h"

static bool matches(const tgw_replay_t *r, uint16_t i, const int8_t *window) {
    return memcmp(r->windows + (size_t)i * r->window_len, window, r->window_len) == 0;
}

bool tgw_replay_invoke(void *ctx, const int8_t *window, size_t len, uint16_t *scores) {
    tgw_replay_t *r = (tgw_replay_t *)ctx;
    uint16_t k, i = 0;
    uint8_t j;
    bool found = false;
    if (len != r->window_len) {
        r->misses++;
        return false;
    }
    for (k = 0; k < r->count && !found; k++) {
        i = (uint16_t)((r->next + k) % r->count);
        found = matches(r, i, window);
    }
    if (!found) {
        r->misses++;
        return false;
    }
    for (j = 0; j < r->n_outputs; j++) {
        scores[j] = tgw_score_from_softmax_q(r->outputs[(size_t)i * r->n_outputs + j]);
    }
    r->next = (uint16_t)((i + 1u) % r->count);
    return true;
}
