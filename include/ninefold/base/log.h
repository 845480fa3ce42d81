// Logging to stderr with levels: "2026-11-24T21:44:06.123Z warn  connection tcp!...: ...".
// The level comes from NINEFOLD_LOG (error, warn, info, debug; default info) or SetLogLevel.
// Thread-safe: each line is written with one write(2).
#ifndef NINEFOLD_BASE_LOG_H_
#define NINEFOLD_BASE_LOG_H_

#include <string_view>

#include "fmt/format.h"

namespace ninefold {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, std::string_view message);

template <class... Args>
void Log(LogLevel level, fmt::format_string<Args...> format, Args&&... args) {
  if (LogEnabled(level)) LogLine(level, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace ninefold

#endif  // NINEFOLD_BASE_LOG_H_
