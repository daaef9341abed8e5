// The pidfile (master only): written atomically (temp file + rename) once the listeners are
// bound, removed at exit only while it still holds our pid, so a newer instance's file stays.
#pragma once

#include <sys/types.h>

#include <string>

namespace prefork::master {

class Pidfile {
 public:
  Pidfile() = default;
  // Writes `path` with our pid; throws common::SysError on failure. Empty path: no pidfile.
  explicit Pidfile(std::string path);
  Pidfile(const Pidfile&) = delete;
  Pidfile& operator=(const Pidfile&) = delete;
  ~Pidfile();

 private:
  std::string path_;
  pid_t pid_ = 0;
};

}  // namespace prefork::master
