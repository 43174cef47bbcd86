/*
 * fuzz_broker_frontend - every frontend request of the broker (docs/protocol.md §7):
 * SUBMIT (task message normalisation: countdown, eta, expires, ids, limits), GET, QUERY,
 * INFO, WORKERS, PURGE, REVOKE, QUEUES, SCHEDULED, TASKS (filters, sort, paging), STATS,
 * HELLO, HEARTBEAT, BYE, and malformed frames. Each message of the input is
 * [identity][ZQP01][CMD][body], fed to a fresh broker after a fixed set-up (fuzz_broker.h).
 */
#include "config.h"
#include "fuzz_broker.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fz_broker_one(data, size, 0);
    return 0;
}
