/* The shipped model's description for the node core. */
#include "basicmotions_node.h"

#include <string.h>

#include "basicmotions_model.h"

void basicmotions_node_model(tgw_model_t *model, void *backend, basicmotions_invoke_fn invoke) {
    memset(model, 0, sizeof *model);
    model->ctx = backend;
    model->model_id = BASICMOTIONS_MODEL_ID;
    model->sha256 = basicmotions_model_sha256;
    model->name = "basicmotions-cnn";
    model->labels = basicmotions_labels;
    model->n_labels = BASICMOTIONS_LABEL_COUNT;
    model->window_samples = BASICMOTIONS_WINDOW_SAMPLES;
    model->n_axes = BASICMOTIONS_WINDOW_AXES;
    model->input_scale = BASICMOTIONS_INPUT_SCALE;
    model->input_zero_point = BASICMOTIONS_INPUT_ZERO_POINT;
    model->invoke = invoke;
}
