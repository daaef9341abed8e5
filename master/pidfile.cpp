#include "master/pidfile.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "common/sys_error.hpp"
#include "common/unique_fd.hpp"

namespace prefork::master {

Pidfile::Pidfile(std::string path) : path_(std::move(path)), pid_(::getpid()) {
  if (path_.empty()) return;
  const std::string temp = path_ + ".tmp." + std::to_string(pid_);
  const std::string text = std::to_string(pid_) + "\n";
  {
    common::UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) throw common::SysError("open(" + temp + ")");
    if (::write(fd.get(), text.data(), text.size()) != static_cast<ssize_t>(text.size())) {
      const int err = errno;
      ::unlink(temp.c_str());
      throw common::SysError("write(" + temp + ")", err);
    }
  }
  if (::rename(temp.c_str(), path_.c_str()) != 0) {
    const int err = errno;
    ::unlink(temp.c_str());
    throw common::SysError("rename(" + temp + ", " + path_ + ")", err);
  }
}

Pidfile::~Pidfile() {
  // Children never run this (they _exit); the check guards against a later instance's file.
  if (path_.empty() || ::getpid() != pid_) return;
  std::ifstream in(path_);
  pid_t recorded = 0;
  if (in >> recorded && recorded == pid_) ::unlink(path_.c_str());
}

}  // namespace prefork::master
