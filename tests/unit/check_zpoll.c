/*
 * check_zpoll - common/zq_zpoll: the same revents as zmq_poll() for plain fds and sockets;
 * a settled socket is woken by its fd alone; an unsettled one is asked first, so a message
 * whose fd signal was taken by another call on the socket is still seen; POLLOUT.
 */
#include "config.h"
#include "zq_zpoll.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

typedef struct {
    void *ctx, *a, *b; /* a PAIR pair over inproc */
} s_pair_t;

static void s_pair(s_pair_t *p, const char *ep)
{
    p->ctx = zmq_ctx_new();
    p->a = zmq_socket(p->ctx, ZMQ_PAIR);
    p->b = zmq_socket(p->ctx, ZMQ_PAIR);
    ck_assert_int_eq(zmq_bind(p->a, ep), 0);
    ck_assert_int_eq(zmq_connect(p->b, ep), 0);
}

static void s_pair_close(s_pair_t *p)
{
    zmq_close(p->a);
    zmq_close(p->b);
    zmq_ctx_term(p->ctx);
}

/* Receive everything waiting on s; 1 when the last receive found nothing (settled). */
static int s_drain(void *s, int *got)
{
    char buf[64];
    while (zmq_recv(s, buf, sizeof buf, ZMQ_DONTWAIT) >= 0)
        (*got)++;
    return zmq_errno() == EAGAIN;
}

START_TEST(test_plain_fds)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    zmq_pollitem_t it = {NULL, fds[0], ZMQ_POLLIN, 0};
    ck_assert_int_eq(zq_zpoll(&it, NULL, 1, 0), 0);
    ck_assert_int_eq(it.revents, 0);
    ck_assert_int_eq(write(fds[1], "x", 1), 1);
    ck_assert_int_eq(zq_zpoll(&it, NULL, 1, 1000), 1);
    ck_assert_int_eq(it.revents, ZMQ_POLLIN);
    /* a closed writer: what zmq_poll says too (POLLIN | POLLERR once the data is read) */
    char c;
    ck_assert_int_eq(read(fds[0], &c, 1), 1);
    close(fds[1]);
    zmq_pollitem_t ref = it;
    ck_assert_int_eq(zq_zpoll(&it, NULL, 1, 1000), 1);
    ck_assert_int_eq(zmq_poll(&ref, 1, 1000), 1);
    ck_assert_int_eq(it.revents, ref.revents);
    ck_assert(it.revents & ZMQ_POLLERR);
    close(fds[0]);
}
END_TEST

START_TEST(test_settled_socket_wakes_on_its_fd)
{
    s_pair_t p;
    s_pair(&p, "inproc://zpoll-fd");
    int got = 0;
    unsigned char settled[1] = {(unsigned char)s_drain(p.a, &got)};
    ck_assert_int_eq(settled[0], 1);
    zmq_pollitem_t it = {p.a, 0, ZMQ_POLLIN, 0};
    ck_assert_int_eq(zq_zpoll(&it, settled, 1, 0), 0);
    ck_assert_int_eq(zmq_send(p.b, "hi", 2, 0), 2);
    ck_assert_int_eq(zq_zpoll(&it, settled, 1, 5000), 1);
    ck_assert_int_eq(it.revents, ZMQ_POLLIN);
    settled[0] = (unsigned char)s_drain(p.a, &got);
    ck_assert_int_eq(got, 1);
    /* nothing new: the fd stays quiet and the wait times out */
    ck_assert_int_eq(zq_zpoll(&it, settled, 1, 50), 0);
    s_pair_close(&p);
}
END_TEST

START_TEST(test_unsettled_socket_is_asked)
{
    s_pair_t p;
    s_pair(&p, "inproc://zpoll-ask");
    int got = 0;
    s_drain(p.a, &got);
    ck_assert_int_eq(zmq_send(p.b, "hi", 2, 0), 2);
    /* another call on the socket takes the fd's signal; the message stays queued */
    int ev = 0;
    size_t sz = sizeof ev;
    ck_assert_int_eq(zmq_getsockopt(p.a, ZMQ_EVENTS, &ev, &sz), 0);
    ck_assert(ev & ZMQ_POLLIN);
    zmq_pollitem_t it = {p.a, 0, ZMQ_POLLIN, 0};
    unsigned char unsettled[1] = {0};
    ck_assert_int_eq(zq_zpoll(&it, unsettled, 1, 0), 1);
    ck_assert_int_eq(it.revents, ZMQ_POLLIN);
    ck_assert_int_eq(zq_zpoll(&it, NULL, 1, 0), 1); /* NULL: nothing is settled */
    s_drain(p.a, &got);
    ck_assert_int_eq(got, 1);
    s_pair_close(&p);
}
END_TEST

START_TEST(test_mixed_items_and_pollout)
{
    s_pair_t p;
    s_pair(&p, "inproc://zpoll-mixed");
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    int got = 0;
    unsigned char settled[3] = {0, 0, 0};
    settled[1] = (unsigned char)s_drain(p.a, &got);
    zmq_pollitem_t it[3] = {{NULL, fds[0], ZMQ_POLLIN, 0},
                            {p.a, 0, ZMQ_POLLIN, 0},
                            {p.b, 0, ZMQ_POLLOUT, 0}};
    /* only the connected PAIR's room to send */
    ck_assert_int_eq(zq_zpoll(it, settled, 3, 1000), 1);
    ck_assert_int_eq(it[0].revents, 0);
    ck_assert_int_eq(it[1].revents, 0);
    ck_assert_int_eq(it[2].revents, ZMQ_POLLOUT);
    it[2].events = ZMQ_POLLIN;
    settled[2] = (unsigned char)s_drain(p.b, &got);
    ck_assert_int_eq(write(fds[1], "x", 1), 1);
    ck_assert_int_eq(zmq_send(p.b, "m", 1, 0), 1);
    int n = 0;
    for (int tries = 0; tries < 100 && n < 2; tries++)
        n = zq_zpoll(it, settled, 3, 1000); /* the fd and the message may land apart */
    ck_assert_int_eq(n, 2);
    ck_assert_int_eq(it[0].revents, ZMQ_POLLIN);
    ck_assert_int_eq(it[1].revents, ZMQ_POLLIN);
    ck_assert_int_eq(it[2].revents, 0);
    close(fds[0]);
    close(fds[1]);
    s_pair_close(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("zpoll");
    TCase *tc = tcase_create("zpoll");
    tcase_add_test(tc, test_plain_fds);
    tcase_add_test(tc, test_settled_socket_wakes_on_its_fd);
    tcase_add_test(tc, test_unsettled_socket_is_asked);
    tcase_add_test(tc, test_mixed_items_and_pollout);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
