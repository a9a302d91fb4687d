// What the keyword spotter needs of a model: features in, kCategoryCount scores out, either one
// whole window a call or, for a streaming model, its newest frames_per_call() frames a call.
// ModelRunner (TFLM) is the board's; the host tests also drive the spotter with recorded outputs
// of the real model, so keyword_spotter.cpp builds and runs without TFLM.
#ifndef TFLM_KWS_KWS_MODEL_H_
#define TFLM_KWS_KWS_MODEL_H_

#include <cstdint>

class KwsModel {
 public:
  virtual ~KwsModel() {}
  // Runs the model on int8 features ([frame][channel], oldest first): the whole window
  // (kFeatureElementCount values) when frames_per_call() is 0, else the frames_per_call() frames
  // that follow the previous call's, and writes kCategoryCount scores (0..255). False (after
  // logging why) on failure.
  virtual bool Invoke(const int8_t* features, uint8_t* scores) = 0;
  // 0: Invoke takes the whole window. N: a streaming model taking N new frames a call.
  virtual int frames_per_call() const { return 0; }
  // Forgets a streaming model's past frames (the frame sequence restarts).
  virtual void ResetState() {}
};

#endif  // TFLM_KWS_KWS_MODEL_H_
