// systemd's notify protocol, written by hand (master only): one datagram per state change to
// $NOTIFY_SOCKET ("READY=1", "RELOADING=1", "STOPPING=1", "STATUS=..."). No-op without systemd.
#pragma once

#include <string>

namespace prefork::master {

// Sends `message` (newline-separated assignments). Returns false when it could not be sent;
// a missing NOTIFY_SOCKET is not an error (true).
bool systemd_notify(const std::string& message);

// Waits until the service manager has processed every message sent before (BARRIER=1 with a
// pipe's write end, which it closes once it got there), at most `timeout_ms`. True once it has,
// or without a service manager; false on a time-out or when it could not be asked.
bool systemd_notify_barrier(int timeout_ms);

// "RELOADING=1\nMONOTONIC_USEC=<now>": what systemd expects at the start of a reload.
std::string reloading_message();

}  // namespace prefork::master
