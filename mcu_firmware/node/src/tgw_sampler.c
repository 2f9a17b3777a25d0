/* Sample ring -> feature window, quantised as the model's input tensor is. */
#include "tgw_node.h"

#include <string.h>

int8_t tgw_quantise(float x, float inv_scale, int8_t zero_point) {
    float v;
    int32_t q;
    if (!(x == x)) { /* NaN: a sensor glitch reads as zero */
        return zero_point;
    }
    v = x * inv_scale;
    if (v > 255.0f || v < -255.0f) { /* saturates whatever the zero point */
        return v > 0.0f ? 127 : -128;
    }
    /* round(x / scale) half away from zero, then the zero point: TFLite's order */
    q = (v >= 0.0f ? (int32_t)(v + 0.5f) : -(int32_t)(-v + 0.5f)) + zero_point;
    return (int8_t)(q > 127 ? 127 : (q < -128 ? -128 : q));
}

bool tgw_sampler_init(tgw_sampler_t *s, uint16_t window_samples, uint8_t n_axes, float scale,
                      int8_t zero_point) {
    memset(s, 0, sizeof *s);
    if (window_samples == 0u || n_axes == 0u || n_axes > TGW_NODE_MAX_AXES ||
        (size_t)window_samples * n_axes > TGW_NODE_MAX_WINDOW || !(scale > 0.0f)) {
        return false;
    }
    s->window_samples = window_samples;
    s->n_axes = n_axes;
    s->inv_scale = 1.0f / scale;
    s->zero_point = zero_point;
    return true;
}

void tgw_sampler_push(tgw_sampler_t *s, const float *axes) {
    int8_t *row = s->values + (size_t)s->next * s->n_axes;
    uint8_t i;
    for (i = 0; i < s->n_axes; i++) {
        row[i] = tgw_quantise(axes[i], s->inv_scale, s->zero_point);
    }
    s->next = (uint16_t)((s->next + 1u) % s->window_samples);
    if (s->filled < s->window_samples) {
        s->filled++;
    }
    if (s->since_window < UINT16_MAX) {
        s->since_window++;
    }
}

bool tgw_sampler_window(tgw_sampler_t *s, uint16_t hop, int8_t *out) {
    size_t row = s->n_axes, first, total = (size_t)s->window_samples * row;
    if (s->filled < s->window_samples || s->since_window < (hop > 0u ? hop : 1u)) {
        return false;
    }
    /* the oldest sample sits where the next one will be written */
    first = (size_t)s->next * row;
    memcpy(out, s->values + first, total - first);
    memcpy(out + (total - first), s->values, first);
    s->since_window = 0;
    return true;
}
