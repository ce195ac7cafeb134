// Errors from system calls, carrying the errno so JavaScript gets `err.code` = 'EADDRINUSE' etc.
#pragma once

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace weft {

/** Symbolic errno name ("EADDRINUSE"), or "E<number>" when the C library has none. */
inline std::string errnoName(int err) {
  const char* name = strerrorname_np(err);
  return name ? std::string(name) : "E" + std::to_string(err);
}

class SysError : public std::runtime_error {
 public:
  SysError(int err, const std::string& what)
      : std::runtime_error(what + ": " + std::strerror(err)), err_(err) {}
  int err() const { return err_; }
  std::string code() const { return errnoName(err_); }

 private:
  int err_;
};

/** A caller error that is not a system call failure (unknown peer, bad record...), with a code. */
class UsageError : public std::runtime_error {
 public:
  UsageError(std::string code, const std::string& what) : std::runtime_error(what), code_(std::move(code)) {}
  const std::string& code() const { return code_; }

 private:
  std::string code_;
};

}  // namespace weft
