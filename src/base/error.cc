#include "ninefold/base/errc.h"
#include "ninefold/base/result.h"

namespace ninefold {
namespace {

class Category final : public std::error_category {
 public:
  const char* name() const noexcept override { return "ninefold"; }
  std::string message(int code) const override {
    switch (static_cast<Errc>(code)) {
      case Errc::kTruncated:
        return "truncated frame";
      case Errc::kSizeMismatch:
        return "size field disagrees with content";
      case Errc::kCountTooLarge:
        return "count larger than the frame";
      case Errc::kStringTooLong:
        return "string longer than its limit";
      case Errc::kFrameTooLarge:
        return "frame larger than msize";
      case Errc::kFrameTooSmall:
        return "frame smaller than its header";
      case Errc::kTooManyWalkElements:
        return "more than 16 walk elements";
      case Errc::kUnknownType:
        return "unknown message type";
      case Errc::kWrongDialect:
        return "message type not valid in this dialect";
      case Errc::kNoDialect:
        return "no dialect negotiated";
    }
    return "ninefold error " + std::to_string(code);
  }
};

}  // namespace

const std::error_category& NinefoldCategory() {
  static const Category category;
  return category;
}

std::string Error::ToString() const {
  std::string out = code_.message();
  if (!context_.empty()) {
    out += ": ";
    out += context_;
  }
  return out;
}

}  // namespace ninefold
