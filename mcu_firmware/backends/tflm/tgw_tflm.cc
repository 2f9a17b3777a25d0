// TFLM backend for the node core: see tgw_tflm.h.
#include "tgw_tflm.h"

#include <cstring>
#include <new>

#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tgw_node.h"

namespace {

// Only the ops the shipped model uses: every other kernel stays out of flash.
// A retrained model with other ops fails AllocateTensors, naming none of them
// on the node: list them with `python -m tflite_micro` or the training script.
using Resolver = tflite::MicroMutableOpResolver<5>;

alignas(Resolver) unsigned char resolver_storage[sizeof(Resolver)];
alignas(tflite::MicroInterpreter) unsigned char interpreter_storage[sizeof(tflite::MicroInterpreter)];
tflite::MicroInterpreter *interpreter = nullptr;

bool fail(tgw_tflm_t *t, const char *why) {
    t->error = why;
    return false;
}

}  // namespace

extern "C" bool tgw_tflm_init(tgw_tflm_t *t, const uint8_t *model_data, uint8_t *arena,
                              size_t arena_size, size_t window_len, uint8_t n_outputs) {
    t->window_len = window_len;
    t->n_outputs = n_outputs;
    t->arena_used = 0;
    t->error = nullptr;
    if (interpreter != nullptr) {
        return fail(t, "one model per build");
    }
    const tflite::Model *model = tflite::GetModel(model_data);
    if (model->version() != TFLITE_SCHEMA_VERSION) {
        return fail(t, "model schema version differs from this TFLM's");
    }
    // placement new into static storage: no heap, and no static constructors
    // running before main on boards whose start-up code skips them
    Resolver *resolver = new (resolver_storage) Resolver();
    if (resolver->AddConv2D() != kTfLiteOk || resolver->AddFullyConnected() != kTfLiteOk ||
        resolver->AddMean() != kTfLiteOk || resolver->AddReshape() != kTfLiteOk ||
        resolver->AddSoftmax() != kTfLiteOk) {
        return fail(t, "op resolver full");
    }
    interpreter = new (interpreter_storage) tflite::MicroInterpreter(model, *resolver, arena,
                                                                     arena_size);
    if (interpreter->AllocateTensors() != kTfLiteOk) {
        return fail(t, "AllocateTensors failed: arena too small or an op missing");
    }
    t->arena_used = interpreter->arena_used_bytes();
    const TfLiteTensor *in = interpreter->input(0);
    const TfLiteTensor *out = interpreter->output(0);
    if (in == nullptr || in->type != kTfLiteInt8 || in->bytes != window_len) {
        return fail(t, "model input is not the int8 window the node sends");
    }
    if (out == nullptr || out->type != kTfLiteInt8 || out->bytes != n_outputs ||
        out->params.zero_point != -128 || out->params.scale != 1.0f / 256.0f) {
        return fail(t, "model output is not an int8 softmax of the node's labels");
    }
    return true;
}

extern "C" bool tgw_tflm_invoke(void *ctx, const int8_t *window, size_t len, uint16_t *scores) {
    const tgw_tflm_t *t = static_cast<const tgw_tflm_t *>(ctx);
    if (interpreter == nullptr || len != t->window_len) {
        return false;
    }
    std::memcpy(interpreter->input(0)->data.int8, window, len);
    if (interpreter->Invoke() != kTfLiteOk) {
        return false;
    }
    const int8_t *q = interpreter->output(0)->data.int8;
    for (uint8_t i = 0; i < t->n_outputs; i++) {
        scores[i] = tgw_score_from_softmax_q(q[i]);
    }
    return true;
}
