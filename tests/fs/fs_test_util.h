// Small helpers the back-end tests share.
#ifndef NINEFOLD_TESTS_FS_FS_TEST_UTIL_H_
#define NINEFOLD_TESTS_FS_FS_TEST_UTIL_H_

#include <gtest/gtest.h>

#include <span>
#include <string_view>
#include <system_error>

#include "ninefold/base/result.h"

namespace ninefold::fs::testing {

// The bytes of a string, as Write takes them.
inline std::span<const std::byte> Bytes(std::string_view s) {
  return {reinterpret_cast<const std::byte*>(s.data()), s.size()};
}

// The error code of a Result that must have failed (a test failure if it did not).
template <class T>
std::error_code Code(const Result<T>& r) {
  EXPECT_FALSE(r.has_value());
  return r.has_value() ? std::error_code() : r.error().code();
}

}  // namespace ninefold::fs::testing

#endif  // NINEFOLD_TESTS_FS_FS_TEST_UTIL_H_
