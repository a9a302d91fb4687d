#include "model_runner.h"

#include <new>

#include "kws_log.h"
#include "model_scores.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "tensorflow/lite/schema/schema_utils.h"

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
      dims->data[1] != kFeatureFrameCount || dims->data[2] != kFeatureChannelCount ||
      dims->data[3] != 1) {
    KwsLog("Bad model input: want int8 [1, %d, %d, 1], got type %d with %d dims "
           "[%d, %d, %d, %d]",
           kFeatureFrameCount, kFeatureChannelCount, static_cast<int>(input->type),
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
  return true;
}

bool ModelRunner::Invoke(const int8_t* features, uint8_t* scores) {
  // TFLM may reuse the input tensor's memory during Invoke(): write it before every call.
  QuantizeFeatures(features, interpreter_->input(0)->data.int8);
  if (interpreter_->Invoke() != kTfLiteOk) {
    KwsLog("Invoke() failed");
    return false;
  }
  OutputToScores(interpreter_->output(0)->data.int8, output_scale_, output_zero_point_,
                 output_is_probability_, scores);
  return true;
}

size_t ModelRunner::arena_used_bytes() const { return interpreter_->arena_used_bytes(); }

void ModelRunner::QuantizeFeatures(const int8_t* features, int8_t* input) const {
  for (int i = 0; i < kFeatureElementCount; ++i) input[i] = input_lut_[features[i] + 128];
}

const int8_t* ModelRunner::output_data() const { return interpreter_->output(0)->data.int8; }
