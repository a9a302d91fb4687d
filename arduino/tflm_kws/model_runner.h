// Runs the converted int8 model (model_data.cc) in TFLM: registers exactly the model's ops,
// checks the model against model_data.h, quantizes int8 features to the model's input, and turns the
// output into 0..255 scores (probability * 256, clamped) for the recognizer (model_scores.h).
// A streaming model (kModelStreamFrames > 0) takes kModelStreamFrames new frames a call; its state
// inputs 1.. get the previous call's outputs 1.., kept here between calls (TFLM reuses input and
// output memory during Invoke(), so they cannot stay in the arena).
// This is the only file that uses TFLM's C++ API; everything that differs between the Arduino
// library's TFLM (February 2023) and a current TFLM stays in model_runner.cpp.
#ifndef TFLM_KWS_MODEL_RUNNER_H_
#define TFLM_KWS_MODEL_RUNNER_H_

#include <cstddef>
#include <cstdint>

#include "feature_provider.h"
#include "kws_model.h"
#include "model_data.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"

class ModelRunner : public KwsModel {
 public:
  // `arena` (16-byte aligned, `arena_size` bytes) holds the model's tensors; the sketch passes
  // kTensorArenaSize.
  ModelRunner(uint8_t* arena, size_t arena_size);
  ~ModelRunner() override;

  // Checks the schema version, builds the interpreter, allocates tensors and checks the input and
  // output against model_data.h. False (after logging why) on any failure.
  bool Begin(const unsigned char* model_data);

  // Runs the model on one feature window (kFeatureElementCount int8 values), or for a streaming
  // model on the kModelStreamFrames frames after the previous call's, and writes kCategoryCount
  // scores. False (after logging why) on failure.
  bool Invoke(const int8_t* features, uint8_t* scores) override;
  int frames_per_call() const override { return kModelStreamFrames; }
  // Sets every state to its zero point (0.0), as after Begin().
  void ResetState() override;

  // Valid after Begin() succeeded.
  size_t arena_used_bytes() const;
  // The model input Invoke() writes for `frames` frames of `features`.
  void QuantizeFeatures(const int8_t* features, int frames, int8_t* input) const;
  const int8_t* output_data() const;  // the raw int8 output of the last Invoke()
  float output_scale() const { return output_scale_; }
  int output_zero_point() const { return output_zero_point_; }
  bool output_is_probability() const { return output_is_probability_; }

 private:
  bool CheckTensors();
  bool CheckStates();

  uint8_t* arena_;
  size_t arena_size_;
  tflite::MicroMutableOpResolver<kModelOpCount> resolver_;
  // Constructed in Begin() (the model is not known before); aligned raw storage avoids the heap.
  alignas(tflite::MicroInterpreter) unsigned char interpreter_storage_[sizeof(tflite::MicroInterpreter)];
  tflite::MicroInterpreter* interpreter_;
  int8_t input_lut_[256];  // int8 feature -> int8 model input
  float output_scale_;
  int output_zero_point_;
  bool output_is_probability_;  // the model ends in SOFTMAX, else it outputs logits
  int8_t state_[kModelStateBytes > 0 ? kModelStateBytes : 1];  // streaming: inputs 1.., in order
};

#endif  // TFLM_KWS_MODEL_RUNNER_H_
