/*
 * zq_zpoll - zmq_poll() with fewer questions to libzmq.
 *
 * zmq_poll() asks every socket for ZMQ_EVENTS before it sleeps and again after it wakes,
 * and each ask costs libzmq a poll() and a getpid(): with four sockets ~18 syscalls per
 * wait, most of a loop turn's syscalls on a VM where each costs ~1 us. A socket's ZMQ_FD
 * becomes readable whenever libzmq has something new for it. So zq_zpoll sleeps in one
 * poll() on those fds and asks libzmq only (a) before sleeping, about the sockets the
 * caller does not know to be settled, and (b) after waking, about the sockets whose fd
 * fired. revents are as exact as zmq_poll()'s.
 *
 * Settled: the caller's last call on the socket was a receive that found nothing (EAGAIN),
 * so libzmq had nothing pending and anything new will make the fd readable. Any other call
 * on the socket since (a send may take the fd's signal) unsettles it.
 */
#ifndef ZQ_ZPOLL_H
#define ZQ_ZPOLL_H

#include <zmq.h>

/* Like zmq_poll(items, n, timeout). settled[i] != 0 says socket item i is settled (see
 * above); settled may be NULL (none is). Plain fd items are polled as zmq_poll() does. */
int zq_zpoll(zmq_pollitem_t *items, const unsigned char *settled, int n, long timeout);

#endif
