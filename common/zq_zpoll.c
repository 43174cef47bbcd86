/*
 * zq_zpoll - zmq_poll() with fewer questions to libzmq (see zq_zpoll.h).
 */
#include "config.h"
#include "zq_zpoll.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>

/* ZMQ_EVENTS of a socket, masked with what the item asks for; -1 on error. */
static int s_ask(const zmq_pollitem_t *it)
{
    int ev = 0;
    size_t sz = sizeof ev;
    if (zmq_getsockopt(it->socket, ZMQ_EVENTS, &ev, &sz) != 0)
        return -1;
    return ev & it->events & (ZMQ_POLLIN | ZMQ_POLLOUT);
}

int zq_zpoll(zmq_pollitem_t *items, const unsigned char *settled, int n, long timeout)
{
    if (n <= 0 || !items)
        return zmq_poll(items, n, timeout);
    struct pollfd fixed[32], *pfd = fixed;
    if (n > 32 && !(pfd = malloc((size_t)n * sizeof *pfd))) {
        errno = ENOMEM;
        return -1;
    }
    int ready = 0, rc = -1;
    for (int i = 0; i < n; i++) {
        zmq_pollitem_t *it = &items[i];
        it->revents = 0;
        pfd[i].fd = -1;
        pfd[i].events = 0;
        pfd[i].revents = 0;
        if (!it->socket) {
            pfd[i].fd = it->fd;
            pfd[i].events = (short)((it->events & ZMQ_POLLIN ? POLLIN : 0) |
                                    (it->events & ZMQ_POLLOUT ? POLLOUT : 0) |
                                    (it->events & ZMQ_POLLPRI ? POLLPRI : 0));
            continue;
        }
        /* the fd never announces room to send: POLLOUT is always asked */
        if (!(settled && settled[i]) || (it->events & ZMQ_POLLOUT)) {
            int got = s_ask(it);
            if (got < 0)
                goto out;
            if (got) {
                it->revents = (short)got;
                ready++;
                continue; /* known: its fd adds nothing */
            }
        }
        int fd;
        size_t sz = sizeof fd;
        if (zmq_getsockopt(it->socket, ZMQ_FD, &fd, &sz) != 0)
            goto out;
        pfd[i].fd = fd;
        pfd[i].events = POLLIN;
    }
    int prc = poll(pfd, (nfds_t)n, ready ? 0 : (int)(timeout < 0 ? -1 : timeout));
    if (prc < 0) {
        if (ready)
            rc = ready; /* what was found before still holds */
        goto out;
    }
    for (int i = 0; i < n && prc > 0; i++) {
        zmq_pollitem_t *it = &items[i];
        short r = pfd[i].revents;
        if (!r)
            continue;
        prc--;
        if (!it->socket) {
            short z = 0;
            if (r & POLLIN)
                z |= ZMQ_POLLIN;
            if (r & POLLOUT)
                z |= ZMQ_POLLOUT;
            if (r & POLLPRI)
                z |= ZMQ_POLLPRI;
            if (r & ~(POLLIN | POLLOUT | POLLPRI))
                z |= ZMQ_POLLERR;
            it->revents = z;
            ready += z != 0;
            continue;
        }
        /* the fd only says that libzmq has news: ask what they are */
        int got = s_ask(it);
        if (got < 0)
            goto out;
        it->revents = (short)got;
        ready += got != 0;
    }
    rc = ready;
out:
    if (pfd != fixed) {
        int e = errno;
        free(pfd);
        errno = e;
    }
    return rc;
}
