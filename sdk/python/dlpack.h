// The DLPack tensor structs (the stable "DLManagedTensor" ABI, DLPack 0.x), written from the
// public DLPack specification; ferry.Object.__dlpack__ hands one out in a PyCapsule named
// "dltensor". Only what ferry exports is declared: host (kDLCPU) tensors of the dtypes of
// include/ferry/object.h.
#pragma once

#include <cstdint>

namespace ferry::python::dlpack {

// DLDeviceType: host memory.
constexpr int32_t kDLCPU = 1;

// DLDataTypeCode.
constexpr uint8_t kDLInt = 0;
constexpr uint8_t kDLUInt = 1;
constexpr uint8_t kDLFloat = 2;
constexpr uint8_t kDLBfloat = 4;

struct DLDevice {
  int32_t device_type;
  int32_t device_id;
};

struct DLDataType {
  uint8_t code;
  uint8_t bits;
  uint16_t lanes;
};

struct DLTensor {
  void* data;
  DLDevice device;
  int32_t ndim;
  DLDataType dtype;
  int64_t* shape;
  int64_t* strides;  // null: compact, row-major
  uint64_t byte_offset;
};

// The consumer calls deleter(self) when it no longer needs the tensor.
struct DLManagedTensor {
  DLTensor dl_tensor;
  void* manager_ctx;
  void (*deleter)(DLManagedTensor* self);
};

// Capsule names: the producer's, and the one a consumer renames it to once it took ownership.
constexpr const char* kCapsuleName = "dltensor";
constexpr const char* kUsedCapsuleName = "used_dltensor";

}  // namespace ferry::python::dlpack
