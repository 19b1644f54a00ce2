// Routing of UCX's own log lines.
//
// UCX prints ERROR lines for events that are ordinary in a cluster where nodes come and go: a
// reconnect to a node that has exited ("connect(fd=.., dest_addr=..) failed: Connection
// refused", then "try to increase net.core.somaxconn ..." and "no active messages transport
// to ...: Destination is unreachable"), and resets by a peer that went away. Ferry already
// reports each of these as a Status naming the node and ucs_status_string ("connection to
// node N lost: ..."), so the UCX lines only alarm. InstallUcxLogFilter routes exactly these
// to spdlog at debug level; every other UCX message keeps UCX's own handling.
//
// Chosen over a default of UCX_LOG_LEVEL=fatal, which would also hide UCX errors that are
// real (a bad UCX_TLS, a failed registration) and that ferry's Status does not explain.
#pragma once

#include <string_view>

namespace ferry::dataplane::ucx {

// True for a UCX log message (already formatted) from `file` (UCX's source file name) that
// only says a peer is gone or refused the connection.
bool IsPeerGoneMessage(std::string_view file, std::string_view message);

// Pushes the filter onto UCX's log handlers, once per process; does nothing when the user
// set UCX_LOG_LEVEL (they asked for UCX's own output). Call before the first worker exists
// (UCX's handler list is not thread-safe). Thread-safe itself.
void InstallUcxLogFilter();

}  // namespace ferry::dataplane::ucx
