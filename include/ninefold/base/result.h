// Error values and Result<T>: how every fallible ninefold function reports failure.
//
// Nothing throws across the public API. A function that can fail returns Result<T>, which
// holds either a T or an Error. Result deliberately uses std::expected's member names
// (has_value, value, error, operator*, operator->, value_or) and Unexpected mirrors
// std::unexpected, so that moving to std::expected is a one-line alias change once every
// supported compiler ships it.
//
//   Result<Frame> frame = Decode(bytes, Dialect::k9P2000L);
//   if (!frame) {
//     log(frame.error().ToString());   // "truncated frame: Twalk.newfid at byte 11 ..."
//     return Unexpected(frame.error());
//   }
//   Use(*frame);
//
// Thread safety: values; no shared state.
#ifndef NINEFOLD_BASE_RESULT_H_
#define NINEFOLD_BASE_RESULT_H_

#include <cstdio>
#include <cstdlib>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <variant>

// Aborts with a message when an invariant of the program itself is broken. Not for bad
// input: bad input is an Error.
#define NINEFOLD_CHECK(cond)                                                                 \
  do {                                                                                       \
    if (!(cond)) {                                                                           \
      std::fprintf(stderr, "%s:%d: NINEFOLD_CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                          \
    }                                                                                        \
  } while (0)

namespace ninefold {

// A failure: a canonical code (errno values in std::generic_category(), protocol faults
// in WireCategory()) plus a short human-readable context.
class Error {
 public:
  Error() = default;
  Error(std::error_code code, std::string context) : code_(code), context_(std::move(context)) {}
  // Convenience for errno values: Error(std::errc::no_such_file_or_directory, "walk 'x'").
  Error(std::errc errc, std::string context)
      : code_(std::make_error_code(errc)), context_(std::move(context)) {}

  const std::error_code& code() const { return code_; }
  const std::string& context() const { return context_; }
  // "<code message>: <context>", or only the code's message when there is no context.
  std::string ToString() const;

 private:
  std::error_code code_;
  std::string context_;
};

// Wraps an Error for construction of a failed Result (std::unexpected's role).
template <class E>
class Unexpected {
 public:
  explicit Unexpected(E error) : error_(std::move(error)) {}
  const E& error() const& { return error_; }
  E&& error() && { return std::move(error_); }

 private:
  E error_;
};
template <class E>
Unexpected(E) -> Unexpected<E>;

// A T or an Error. Accessing value() of a failed Result aborts (a program bug).
template <class T>
class [[nodiscard]] Result {
 public:
  // By reference, not by value: a value moved into a Result is moved once (a Message or a
  // Frame is a large variant, and every request's reply passes through here).
  Result(T&& value) : state_(std::in_place_index<0>, std::move(value)) {}  // NOLINT: implicit
  Result(const T& value) : state_(std::in_place_index<0>, value) {}        // NOLINT: implicit
  template <class U, class = std::enable_if_t<std::is_constructible_v<T, U&&> &&
                                              !std::is_same_v<std::decay_t<U>, Result>>>
  Result(U&& value) : state_(std::in_place_index<0>, T(std::forward<U>(value))) {}  // NOLINT
  Result(Unexpected<Error> error)  // NOLINT: implicit, as with std::expected
      : state_(std::in_place_index<1>, std::move(error).error()) {}

  bool has_value() const { return state_.index() == 0; }
  explicit operator bool() const { return has_value(); }

  T& value() & { return Checked(); }
  const T& value() const& { return const_cast<Result*>(this)->Checked(); }
  T&& value() && { return std::move(Checked()); }
  T& operator*() & { return Checked(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(Checked()); }
  T* operator->() { return &Checked(); }
  const T* operator->() const { return &value(); }
  template <class U>
  T value_or(U&& fallback) const& {
    return has_value() ? std::get<0>(state_) : T(std::forward<U>(fallback));
  }

  const Error& error() const& {
    NINEFOLD_CHECK(!has_value());
    return std::get<1>(state_);
  }
  Error&& error() && {
    NINEFOLD_CHECK(!has_value());
    return std::move(std::get<1>(state_));
  }

 private:
  T& Checked() {
    NINEFOLD_CHECK(has_value());
    return std::get<0>(state_);
  }
  std::variant<T, Error> state_;
};

// Result<void>: success carries nothing.
template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Unexpected<Error> error) : error_(std::move(error).error()), ok_(false) {}  // NOLINT
  bool has_value() const { return ok_; }
  explicit operator bool() const { return ok_; }
  void value() const { NINEFOLD_CHECK(ok_); }
  const Error& error() const& {
    NINEFOLD_CHECK(!ok_);
    return error_;
  }

 private:
  Error error_;
  bool ok_ = true;
};

}  // namespace ninefold

#endif  // NINEFOLD_BASE_RESULT_H_
