#pragma once

#include "stompctl/admin_client.hpp"
#include "stompctl/command_line.hpp"

namespace stompctl {

// Runs cl.command (which check_arguments() accepted) against the admin API through
// `client`: one request, then a table, key-value lines or the API's JSON (--json) on
// stdout. Returns exit_ok; anything else ends the run through fail(). `passwd` needs no
// broker and never calls `client`.
int run_command(const command_line& cl, const admin_client& client);

}  // namespace stompctl
