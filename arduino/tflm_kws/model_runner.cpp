#include "model_runner.h"

#include <cstring>
#include <new>

#include "kws_log.h"
#include "model_scores.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tensorflow/lite/schema/schema_utils.h"

namespace {
// Frames of input 0: a streaming model's new frames, else the whole window.
constexpr int kInputFrames = kModelStreamFrames > 0 ? kModelStreamFrames : kFeatureFrameCount;
}  // namespace

ModelRunner::ModelRunner(uint8_t* arena, size_t arena_size)
    : arena_(arena),
      arena_size_(arena_size),
      interpreter_(nullptr),
      output_scale_(0.0f),
      output_zero_point_(0),
      output_is_probability_(false) {}

ModelRunner::~ModelRunner() {
  if (interpreter_ != nullptr) interpreter_->~MicroInterpreter();
}

bool ModelRunner::Begin(const unsigned char* model_data) {
  if (interpreter_ != nullptr) {
    KwsLog("ModelRunner::Begin() called twice");
    return false;
  }
  if (arena_size_ < static_cast<size_t>(kTensorArenaUsedBytes)) {
    // TFLM itself may abort (not fail) inside its allocator when the arena is too small.
    KwsLog("Tensor arena of %d bytes is smaller than the %d bytes this model was measured to use "
           "(kTensorArenaUsedBytes); raise kTensorArenaSize",
           static_cast<int>(arena_size_), kTensorArenaUsedBytes);
    return false;
  }
  const tflite::Model* model = tflite::GetModel(model_data);
  if (model->version() != TFLITE_SCHEMA_VERSION) {
    KwsLog("Model provided is schema version %d, not equal to supported version %d",
           static_cast<int>(model->version()), TFLITE_SCHEMA_VERSION);
    return false;
  }
  TFLM_KWS_ADD_MODEL_OPS(resolver_);

  // The model's last operator tells whether its output is already a probability.
  const auto* subgraphs = model->subgraphs();
  const auto* operators = subgraphs != nullptr && subgraphs->size() > 0
                              ? subgraphs->Get(0)->operators()
                              : nullptr;
  if (operators == nullptr || operators->size() == 0 || model->operator_codes() == nullptr) {
    KwsLog("Model has no operators");
    return false;
  }
  const tflite::Operator* last = operators->Get(operators->size() - 1);
  output_is_probability_ =
      tflite::GetBuiltinCode(model->operator_codes()->Get(last->opcode_index())) ==
      tflite::BuiltinOperator_SOFTMAX;

  // Both TFLM generations take (model, resolver, arena, arena size).
  interpreter_ = new (interpreter_storage_)
      tflite::MicroInterpreter(model, resolver_, arena_, arena_size_);
  if (interpreter_->AllocateTensors() != kTfLiteOk) {
    // TFLM's own message just before this one says how many bytes are missing.
    KwsLog("AllocateTensors() failed: tensor arena of %d bytes too small; raise kTensorArenaSize",
           static_cast<int>(arena_size_));
    return false;
  }
  return CheckTensors();
}

bool ModelRunner::CheckTensors() {
  const TfLiteTensor* input = interpreter_->input(0);
  const TfLiteIntArray* dims = input->dims;
  if (input->type != kTfLiteInt8 || dims->size != 4 || dims->data[0] != 1 ||
      dims->data[1] != kInputFrames || dims->data[2] != kFeatureChannelCount || dims->data[3] != 1) {
    KwsLog("Bad model input: want int8 [1, %d, %d, 1], got type %d with %d dims "
           "[%d, %d, %d, %d]",
           kInputFrames, kFeatureChannelCount, static_cast<int>(input->type),
           dims->size, dims->size > 0 ? dims->data[0] : 0, dims->size > 1 ? dims->data[1] : 0,
           dims->size > 2 ? dims->data[2] : 0, dims->size > 3 ? dims->data[3] : 0);
    return false;
  }
  const TfLiteTensor* output = interpreter_->output(0);
  if (output->type != kTfLiteInt8 || output->dims->size != 2 || output->dims->data[0] != 1 ||
      output->dims->data[1] != kCategoryCount) {
    KwsLog("Bad model output: want int8 [1, %d] (kCategoryCount), got type %d with %d dims",
           kCategoryCount, static_cast<int>(output->type), output->dims->size);
    return false;
  }
  const float input_scale = input->params.scale;
  if (!(input_scale > 0.0f)) {
    KwsLog("Model input is not quantized (scale 0)");
    return false;
  }
  BuildFeatureInputTable(input_scale, input->params.zero_point, input_lut_);
  output_scale_ = output->params.scale;
  output_zero_point_ = output->params.zero_point;
  return CheckStates();
}

bool ModelRunner::CheckStates() {
  const size_t states = interpreter_->inputs_size() - 1;
  if (interpreter_->outputs_size() != states + 1) {
    KwsLog("Bad streaming model: %d state inputs but %d state outputs", static_cast<int>(states),
           static_cast<int>(interpreter_->outputs_size()) - 1);
    return false;
  }
  if ((states > 0) != (kModelStreamFrames > 0)) {
    KwsLog("Model has %d state inputs but model_data.h says kModelStreamFrames = %d",
           static_cast<int>(states), kModelStreamFrames);
    return false;
  }
  size_t total = 0;
  for (size_t i = 1; i <= states; ++i) {
    const TfLiteTensor* in = interpreter_->input(i);
    const TfLiteTensor* out = interpreter_->output(i);
    if (in->type != kTfLiteInt8 || out->type != kTfLiteInt8 || in->bytes != out->bytes ||
        in->params.zero_point != out->params.zero_point) {
      KwsLog("Bad streaming model: state input %d and output %d differ in type, size or zero "
             "point", static_cast<int>(i), static_cast<int>(i));
      return false;
    }
    total += in->bytes;
  }
  if (total != static_cast<size_t>(kModelStateBytes)) {
    KwsLog("Streaming model state is %d bytes, model_data.h says kModelStateBytes = %d",
           static_cast<int>(total), kModelStateBytes);
    return false;
  }
  ResetState();
  return true;
}

void ModelRunner::ResetState() {
  if (kModelStreamFrames == 0) return;
  int8_t* state = state_;
  for (size_t i = 1; i < interpreter_->inputs_size(); ++i) {
    const TfLiteTensor* in = interpreter_->input(i);
    memset(state, in->params.zero_point, in->bytes);
    state += in->bytes;
  }
}

bool ModelRunner::Invoke(const int8_t* features, uint8_t* scores) {
  // TFLM may reuse the input tensors' memory during Invoke(): write them before every call.
  QuantizeFeatures(features, kInputFrames, interpreter_->input(0)->data.int8);
  const size_t states = interpreter_->inputs_size() - 1;
  const int8_t* state = state_;
  for (size_t i = 1; i <= states; ++i) {
    TfLiteTensor* in = interpreter_->input(i);
    memcpy(in->data.int8, state, in->bytes);
    state += in->bytes;
  }
  if (interpreter_->Invoke() != kTfLiteOk) {
    KwsLog("Invoke() failed");
    return false;
  }
  int8_t* next = state_;
  for (size_t i = 1; i <= states; ++i) {
    const TfLiteTensor* out = interpreter_->output(i);
    memcpy(next, out->data.int8, out->bytes);
    next += out->bytes;
  }
  OutputToScores(interpreter_->output(0)->data.int8, output_scale_, output_zero_point_,
                 output_is_probability_, scores);
  return true;
}

size_t ModelRunner::arena_used_bytes() const { return interpreter_->arena_used_bytes(); }

void ModelRunner::QuantizeFeatures(const int8_t* features, int frames, int8_t* input) const {
  const int count = frames * kFeatureChannelCount;
  for (int i = 0; i < count; ++i) input[i] = input_lut_[features[i] + 128];
}

const int8_t* ModelRunner::output_data() const { return interpreter_->output(0)->data.int8; }
