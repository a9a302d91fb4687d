// What the keyword spotter needs of a model: one feature window in, kCategoryCount scores out.
// ModelRunner (TFLM) is the board's; the host tests also drive the spotter with recorded outputs
// of the real model, so keyword_spotter.cpp builds and runs without TFLM.
#ifndef TFLM_KWS_KWS_MODEL_H_
#define TFLM_KWS_KWS_MODEL_H_

#include <cstdint>

class KwsModel {
 public:
  virtual ~KwsModel() {}
  // Runs the model on kFeatureElementCount int8 features ([frame][channel], oldest first) and
  // writes kCategoryCount scores (0..255). False (after logging why) on failure.
  virtual bool Invoke(const int8_t* features, uint8_t* scores) = 0;
};

#endif  // TFLM_KWS_KWS_MODEL_H_
