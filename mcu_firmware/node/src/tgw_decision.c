/* Decision: threshold, debounce and cooldown over a stream of inferences. */
#include "tgw_node.h"

#include <string.h>

void tgw_decision_reset(tgw_decision_t *d) {
    memset(d, 0, sizeof *d);
}

uint8_t tgw_top_label(const uint16_t *scores, uint8_t n) {
    uint8_t i, top = 0;
    for (i = 1; i < n; i++) {
        if (scores[i] > scores[top]) {
            top = i;
        }
    }
    return top;
}

bool tgw_decide(tgw_decision_t *d, const tgw_decision_config_t *cfg, uint8_t label,
                uint16_t score, uint32_t now_ms) {
    uint8_t need = cfg->debounce > 0u ? cfg->debounce : 1u;
    bool candidate = label < 32u && (cfg->label_mask & (1uL << label)) != 0u &&
                     score >= cfg->threshold;
    if (!candidate) {
        d->streak = 0;
        return false;
    }
    if (d->streak == 0u || d->label != label) {
        d->label = label;
        d->streak = 0;
    }
    if (d->streak < need) {
        d->streak++;
    }
    if (d->streak < need) {
        return false;
    }
    /* unsigned difference: right across the 49-day wrap of the uptime */
    if (d->fired && (uint32_t)(now_ms - d->last_event_ms) < cfg->cooldown_ms) {
        return false; /* the streak stays complete: the first window after the cooldown fires */
    }
    d->fired = true;
    d->last_event_ms = now_ms;
    d->streak = 0; /* the next event needs a whole debounce again */
    return true;
}
