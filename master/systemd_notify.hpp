// systemd's notify protocol, written by hand (master only): one datagram per state change to
// $NOTIFY_SOCKET ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=..."). No-op without systemd.
#pragma once

#include <string>

namespace prefork::master {

// Sends `message` (newline-separated assignments). Returns false when it could not be sent;
// a missing NOTIFY_SOCKET is not an error (true).
bool systemd_notify(const std::string& message);

// "RELOADING=1\nMONOTONIC_USEC=<now>": what systemd expects at the start of a reload.
std::string reloading_message();

}  // namespace prefork::master
