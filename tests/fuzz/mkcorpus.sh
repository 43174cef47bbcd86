#!/usr/bin/env bash
# Regenerate the seed corpus tests/fuzz/corpus/<target>/ from the message examples of
# docs/protocol.md (valid messages, a few malformed ones), in the encoding of
# tests/fuzz/README.md. The corpus is committed; run this after a protocol change and commit
# what changed.
# shellcheck disable=SC2016 # "$REQ" in the answers is literal: the fake peer replaces it
set -euo pipefail
cd "$(dirname "$0")"
pack=./pack.sh
c=corpus
seed() { # seed TARGET NAME FRAME... [-- FRAME...]...
    local t=$1 n=$2
    shift 2
    mkdir -p "$c/$t"
    "$pack" "$@" >"$c/$t/$n"
}
rm -rf "$c"
TS=2026-11-26T12:00:00.123456Z
REC_OK='{"req":$REQ,"id":"fz-task","task":"tasks.add","queue":"celery","args":[2,2],"kwargs":{},"known":true,"state":"SUCCESS","result":4,"exception":null,"traceback":null,"retries":0,"worker":"w1@fuzz","eta":null,"expires":null,"parent_id":null,"root_id":"fz-task","date_sent":"2026-11-26T12:00:00.000001Z","date_received":"2026-11-26T12:00:00.100000Z","date_started":"2026-11-26T12:00:00.200000Z","date_done":"2026-11-26T12:00:00.300000Z","runtime":0.1}'
REC_FAIL='{"req":$REQ,"id":"fz-task","task":"tasks.div","known":true,"state":"FAILURE","result":null,"exception":{"type":"ZeroDivisionError","message":"division by zero"},"traceback":"Traceback (most recent call last):\n  ZeroDivisionError: division by zero","retries":1,"date_done":"2026-11-26T12:00:01Z"}'
REC_STARTED='{"req":$REQ,"id":"fz-task","task":"tasks.sleep","known":true,"state":"STARTED","date_received":"2026-11-26T12:00:00Z","date_started":"2026-11-26T12:00:00.5Z"}'
REC_UNKNOWN='{"req":$REQ,"id":"fz-task","known":false,"state":"PENDING"}'
WORKER='{"name":"w1@fuzz","hostname":"fuzz","pid":4242,"queues":["celery"],"concurrency":2,"prefetch":1,"pool":"prefork","control":"tcp://127.0.0.1:1","tasks":["tasks.add","tasks.div"],"sw_ver":"0.1.0","started":"2026-11-26T11:00:00Z","last_heartbeat":"2026-11-26T12:00:00Z","held":1,"held_eta":0,"processed":5,"active":1,"dispatch":"ipc:///x","connected":true}'
STATS='{"req":$REQ,"tasks":{"PENDING":1,"RECEIVED":0,"STARTED":1,"RETRY":0,"SUCCESS":5,"FAILURE":1,"REVOKED":0,"total":8},"retried":1,"workers":[{"name":"w1@fuzz","processed":6,"succeeded":5,"failed":1,"retried":1,"online":true,"active":1,"held":1,"concurrency":2,"last_heartbeat":"2026-11-26T12:00:00Z"},{"name":"old@fuzz","processed":2,"succeeded":2,"failed":0,"retried":0,"online":false,"last_heartbeat":null}],"events":42,"workers_online":1,"started":"2026-11-26T10:00:00Z"}'
QUEUES='{"req":$REQ,"queues":[{"name":"celery","ready":3,"scheduled":1,"reserved":1,"consumers":1}]}'
TASKS='{"req":$REQ,"tasks":['"${REC_OK/\"req\":\$REQ,/}"','"${REC_FAIL/\"req\":\$REQ,/}"'],"total":2,"limit":100,"offset":0,"truncated":false}'

# --- proto: one message, read with and without an identity frame
seed proto submit ZQP01 SUBMIT '{"task":"tasks.add","args":[2,2],"kwargs":{}}'
seed proto router peer-1 ZQP01 GET '{"req":7,"id":"6a1c1f0e","timeout":null}'
seed proto event task-succeeded ZQP01 "{\"type\":\"task-succeeded\",\"timestamp\":\"$TS\",\"uuid\":\"x\",\"hostname\":\"w\",\"result\":4,\"runtime\":0.01}"
seed proto badversion peer-1 ZQP02 INFO '{}'
seed proto trailing ZQP01 INFO '{"req":1} x'

# --- time: wire timestamps and what the monitor accepts
seed time wire "$TS"
seed time minutes '2026-11-26 12:00'
seed time offset '2026-11-26T12:00:00+02:00'
seed time date '2026-11-26'
seed time comma '2026-11-26t23:59:60,5-05:30'

# --- broker frontend: [identity][ZQP01][CMD][body] (docs/protocol.md §6, §7, §10); replies to
# identity "fz" reach the target's client, which checks them
seed broker_frontend submit \
    fz ZQP01 SUBMIT '{"req":1,"task":"tasks.add","args":[2,2],"kwargs":{},"queue":"celery","countdown":5,"expires":60}' -- \
    fz ZQP01 GET '{"req":2,"id":"t1","timeout":0}'
seed broker_frontend submit_full \
    fz ZQP01 SUBMIT "{\"req\":3,\"id\":\"s-full\",\"task\":\"tasks.add\",\"args\":[1,{\"a\":[null,true]}],\"kwargs\":{\"x\":1.5},\"queue\":\"q2\",\"eta\":\"$TS\",\"expires\":\"2030-01-01T00:00:00Z\",\"retries\":2,\"root_id\":\"r\",\"parent_id\":\"p\",\"group\":\"g\",\"origin\":\"gen1@host\",\"ignore_result\":true,\"timelimit\":[10,5],\"priority\":3}" -- \
    fz ZQP01 SUBMIT '{"req":4,"id":"s-full","task":"tasks.add"}' -- \
    fz ZQP01 QUERY '{"req":5,"id":"s-full"}'
# the client library's form (read without a tree: broker/zq_submit.c), then near misses of it
seed broker_frontend submit_client \
    fz ZQP01 SUBMIT '{"req":6,"id":"c-1","task":"tasks.add","args":[1,2],"kwargs":{},"queue":"celery","ignore_result":false,"priority":0,"origin":"gen1@h","root_id":"c-1","get":7,"coalesce":2}' -- \
    fz ZQP01 SUBMIT '{"req":8,"id":"c-2","task":"tasks.add","args":["a\"b",{"k":[-1.5e3,false]}],"countdown":0.5,"expires":"2030-01-01T00:00:00Z","get":9,"coalesce":true}' -- \
    fz ZQP01 SUBMIT '{"req":10,"id":"c-1","task":"tasks.add","args":[01],"get":11}' -- \
    fz ZQP01 SUBMIT '{"req":12,"id":"c-3","task":"tasks.add","args":["\u00e9"],"priority":9}'
# several SUBMITs in one message (zq's client library: tasks submitted in quick succession),
# then an element that is not an object, and a body cut short
seed broker_frontend submits \
    fz ZQP01 SUBMITS '[{"req":1,"id":"m-1","task":"tasks.add","args":[1,2],"kwargs":{},"queue":"celery","ignore_result":false,"priority":0,"origin":"gen1@h","root_id":"m-1","get":2,"coalesce":2},{"req":3,"id":"m-2","task":"tasks.add","args":[3,4],"get":4,"coalesce":2}]' -- \
    fz ZQP01 SUBMITS '[{"req":5,"id":"m-1","task":"tasks.add"}, 7, {"req":6,"task":"bad name"}]' -- \
    fz ZQP01 SUBMITS '[{"req":8,"id":"m-3","task":"tasks.add"},{"req":9,'
seed broker_frontend get_query \
    fz ZQP01 GET '{"req":1,"id":"t2","timeout":0.5}' -- \
    fz ZQP01 GET '{"req":2,"id":"never","timeout":null}' -- \
    fz ZQP01 QUERY '{"req":3,"id":"t1"}' -- \
    fz ZQP01 QUERY '{"req":4,"ids":["t1","t2","nope"]}'
seed broker_frontend info fz ZQP01 INFO '{}' -- fz ZQP01 WORKERS '{}' -- fz ZQP01 QUEUES '{}' -- \
    fz ZQP01 SCHEDULED '{}' -- fz ZQP01 STATS '{"req":9}'
seed broker_frontend revoke_purge \
    fz ZQP01 REVOKE '{"req":1,"ids":["t1","t2"],"terminate":true,"signal":"SIGKILL"}' -- \
    fz ZQP01 PURGE '{"req":2,"queues":["celery"]}' -- \
    fz ZQP01 PURGE '{"req":3}'
seed broker_frontend tasks \
    fz ZQP01 TASKS '{"req":1,"limit":10,"offset":0,"sort_by":"-received","state":"SUCCESS,FAILURE","taskname":"tasks.add","workername":"w1@fuzz","received_start":"2026-01-01T00:00:00Z","received_end":"2027-01-01","search":"add"}' -- \
    fz ZQP01 TASKS '{"req":2,"parent_id":"t1","root_id":"t1","sort_by":"name","state":"PENDING"}'
seed broker_frontend worker \
    fz ZQP01 HELLO '{"req":1,"name":"w2@fuzz","hostname":"fuzz","pid":7,"queues":["celery"],"concurrency":1,"prefetch":0,"pool":"solo","control":"","tasks":["tasks.add"],"sw_ver":"0.1.0","started":"2026-11-26T11:00:00Z","heartbeat":2,"prefetch_adaptive":true,"batch_tasks":true,"holding":["t4"]}' -- \
    fz ZQP01 HEARTBEAT '{"req":2,"name":"w2@fuzz","active":1,"processed":3}' -- \
    fz ZQP01 HEARTBEAT '{"req":3,"name":"ghost@fuzz","active":0,"processed":0}' -- \
    fz ZQP01 BYE '{"req":4,"name":"w2@fuzz"}'
seed broker_frontend bad \
    c6 ZQP02 INFO '{}' -- c6 ZQP01 info '{}' -- c6 ZQP01 INFO -- c6 ZQP01 NOPE '{"req":1}' -- \
    c6 ZQP01 SUBMIT '{"req":2,"task":"tasks.add","args":{},"countdown":"soon"}' -- \
    '' ZQP01 INFO '{}'

# --- broker upstream: [ZQP01][CMD][body] (§8); w1@fuzz holds t1 and t3
seed broker_upstream states \
    ZQP01 STATE "{\"id\":\"t1\",\"state\":\"RECEIVED\",\"worker\":\"w1@fuzz\",\"timestamp\":\"$TS\"}" -- \
    ZQP01 STATE "{\"id\":\"t1\",\"state\":\"STARTED\",\"worker\":\"w1@fuzz\",\"timestamp\":\"$TS\",\"pid\":99,\"acks_late\":true}" -- \
    ZQP01 STATE "{\"id\":\"t1\",\"state\":\"SUCCESS\",\"worker\":\"w1@fuzz\",\"timestamp\":\"$TS\",\"result\":{\"sum\":[4]},\"runtime\":0.002}"
seed broker_upstream failure \
    ZQP01 STATE "{\"id\":\"t3\",\"state\":\"FAILURE\",\"worker\":\"w1@fuzz\",\"timestamp\":\"$TS\",\"exception\":{\"type\":\"ValueError\",\"message\":\"bad\"},\"traceback\":\"Traceback...\",\"runtime\":1.5}" -- \
    ZQP01 STATE "{\"id\":\"t1\",\"state\":\"REVOKED\",\"worker\":\"w1@fuzz\",\"timestamp\":\"$TS\",\"exception\":{\"type\":\"TaskRevokedError\",\"message\":\"terminated\"},\"expired\":false,\"terminated\":true,\"signum\":9}"
seed broker_upstream retry \
    ZQP01 STATE "{\"id\":\"t1\",\"state\":\"RETRY\",\"worker\":\"w1@fuzz\",\"timestamp\":\"$TS\",\"exception\":{\"type\":\"IOError\",\"message\":\"later\"},\"countdown\":3,\"eta\":\"2026-11-26T12:00:03.123456Z\"}" -- \
    ZQP01 STATE '{"id":"t3","state":"RETRY","worker":"w1@fuzz","countdown":0.5}'
seed broker_upstream return ZQP01 RETURN '{"worker":"w1@fuzz","ids":["t1","t3","unknown"]}'
seed broker_upstream batch \
    ZQP01 BATCH "{\"worker\":\"w1@fuzz\",\"seq\":1,\"messages\":[[\"STATE\",{\"id\":\"t1\",\"state\":\"SUCCESS\",\"worker\":\"w1@fuzz\",\"timestamp\":\"$TS\",\"result\":4,\"runtime\":0.001,\"received\":\"$TS\",\"started\":\"$TS\",\"pid\":7}],[\"SUBMIT\",{\"task\":\"tasks.add\",\"args\":[1],\"parent_id\":\"t1\"}],[\"RETURN\",{\"worker\":\"w1@fuzz\",\"ids\":[\"t3\"]}]]}" -- \
    ZQP01 BATCH '{"worker":"w1@fuzz","seq":1,"messages":[["STATE",{"id":"t1","state":"SUCCESS","worker":"w1@fuzz"}]]}' -- \
    ZQP01 BATCH '{"worker":"w9@fuzz","seq":2,"messages":[["STATE",{"id":"t3","state":"STARTED"}],["BATCH",{}],[1,2]]}'
seed broker_upstream folded \
    ZQP01 STATE "{\"id\":\"t3\",\"state\":\"FAILURE\",\"worker\":\"w1@fuzz\",\"timestamp\":\"$TS\",\"received\":\"2026-11-26T11:59:59Z\",\"started\":\"2026-11-26T12:00:00Z\",\"pid\":12,\"exception\":{\"type\":\"KeyError\",\"message\":\"k\"},\"runtime\":0.004}"
seed broker_upstream subtask \
    ZQP01 SUBMIT '{"task":"tasks.add","args":[1,2],"parent_id":"t1","root_id":"t1","origin":"w1@fuzz"}' -- \
    ZQP01 STATE '{"id":"t2","state":"SUCCESS","worker":"w1@fuzz","result":null}'
seed broker_upstream bad ZQP01 STATE '{"id":"t1","state":"PENDING"}' -- ZQP01 STATE '{"state":"SUCCESS"}' -- \
    ZQP01 RETURN '{"ids":"t1"}' -- ZQP01 HELLO '{}' -- ZQP02 STATE '{}'

# --- worker dispatch: [ZQP01][CMD][body] (§6, §8)
seed worker_dispatch task \
    ZQP01 TASK "{\"id\":\"d1\",\"task\":\"tasks.add\",\"args\":[2,2],\"kwargs\":{},\"queue\":\"celery\",\"eta\":null,\"expires\":null,\"retries\":0,\"root_id\":\"d1\",\"parent_id\":null,\"group\":null,\"origin\":\"gen1@host\",\"ignore_result\":false,\"timelimit\":[null,null],\"priority\":0,\"sent\":\"$TS\",\"redelivered\":false}" -- \
    ZQP01 TASK '{"id":"d1","task":"tasks.add","args":[2,2],"redelivered":true}'
seed worker_dispatch eta \
    ZQP01 TASK '{"id":"d2","task":"tasks.sleep","args":[1],"kwargs":{"x":"y"},"eta":"2030-01-01T00:00:00Z","expires":"2031-01-01T00:00:00Z","timelimit":[5,2.5],"retries":3}' -- \
    ZQP01 REVOKED '{"ids":["d2"],"terminate":false}'
seed worker_dispatch revoke_first \
    ZQP01 REVOKED '{"ids":["d3","d4"],"terminate":true,"signal":"SIGKILL"}' -- \
    ZQP01 TASK '{"id":"d3","task":"tasks.add","args":[1,1]}' -- \
    ZQP01 REVOKED '{"ids":["d9"],"terminate":true,"signal":15}'
seed worker_dispatch ack \
    ZQP01 ACK '{"seqs":[1,2,3]}' -- ZQP01 ACK '{"seqs":[0,-1,1e300,"x",null]}' -- ZQP01 ACK '{"seqs":7}'
seed worker_dispatch failures \
    ZQP01 TASK '{"id":"d5","task":"tasks.nope","args":[]}' -- \
    ZQP01 TASK '{"id":"d6","task":"tasks.add","args":{"a":1}}' -- \
    ZQP01 TASK '{"id":"d7","task":"tasks.add","args":[1],"expires":"2001-01-01T00:00:00Z"}' -- \
    ZQP01 TASK '{"task":"tasks.add"}' -- ZQP01 STATE '{}'
seed worker_dispatch tasks \
    ZQP01 TASKS '[{"id":"d10","task":"tasks.add","args":[1,2],"kwargs":{},"queue":"celery","redelivered":false},{"id":"d11","task":"tasks.sleep","args":[0],"eta":"2030-01-01T00:00:00Z","redelivered":true} , {"id":"d12","task":"tasks.nope","args":[]},7,{"id":"d13","task":"tasks.add","args":["]\\\"[{,"]},{"task":"tasks.add"}]' -- \
    ZQP01 TASKS ' [ ] ' -- ZQP01 TASKS '[{"id":"d10","task":"tasks.add","args":[1,2]}]' -- \
    ZQP01 TASKS '[{"id":"d14","task":"tasks.add","args":[1,1]},{"id":"d15","args":[' -- \
    ZQP01 TASKS '[{"id":"d16","task":"tasks.add"} {"id":"d17"},,]' -- ZQP01 TASKS '{"id":"d18","task":"tasks.add"}' -- \
    ZQP02 TASKS '[]'
seed worker_dispatch repr \
    ZQP01 TASK '{"id":"d8","task":"tasks.request","args":["quote'"'"'s \"dq\" \\\\ \u00e9 \ud83d\ude00",1e300,-0.0,12345678901234567890,true,null,[],{}],"kwargs":{"k":[1.5,{"n":null}]}}'

# --- worker control: [ZQP01][INSPECT][body] (§8 "Control", docs/management.md)
for m in ping active reserved scheduled revoked registered stats conf active_queues; do
    seed worker_control "$m" ZQP01 INSPECT "{\"req\":1,\"method\":\"$m\"}"
done
seed worker_control query_task ZQP01 INSPECT '{"req":2,"method":"query_task","arguments":{"ids":["t1","t2","t3","zz"]}}'
seed worker_control bad ZQP01 INSPECT '{"req":3,"method":"shutdown"}' -- ZQP01 PING '{"req":4}' -- \
    ZQP01 INSPECT '{"req":5,"method":"query_task","arguments":{"ids":[]}}' -- ZQP02 INSPECT '{}' -- \
    ZQP01 INSPECT '[1]'

# --- client: the broker's answers, in the order of the requests (fuzz_client_reply.c)
seed client_reply normal \
    ZQP01 REPLY '{"req":$REQ,"id":"fz-task"}' -- ZQP01 REPLY "$REC_OK" -- \
    ZQP01 REPLY "$REC_STARTED" -- ZQP01 REPLY "$REC_UNKNOWN" -- ZQP01 REPLY "$REC_FAIL" -- \
    ZQP01 REPLY '{"req":$REQ,"revoked":["fz-task","other"]}' -- ZQP01 REPLY "$TASKS"
seed client_reply errors \
    ZQP01 REPLY '{"req":$REQ,"error":{"code":"ESTORE","message":"database or disk is full"}}' -- \
    ZQP01 REPLY '{"req":$REQ,"error":{"code":"ENOTFOUND","message":"no such task"}}' -- \
    ZQP01 REPLY '{"req":$REQ,"id":"fz-task","known":true,"state":"RETRY"}' -- \
    ZQP01 REPLY '{"req":$REQ,"id":"fz-task","state":"BOGUS"}' -- \
    ZQP01 REPLY '{"req":$REQ,"id":"fz-task","timeout":true,"state":"STARTED"}' -- \
    ZQP01 REPLY '{"req":$REQ,"error":{"code":"EINVAL","message":"revoke: bad"}}'
seed client_reply timeout \
    ZQP01 REPLY '{"req":$REQ,"id":"fz-task"}' -- \
    ZQP01 REPLY '{"req":$REQ,"id":"fz-task","known":true,"state":"STARTED","timeout":true}' -- \
    ZQP01 REPLY "$REC_OK"
# REPLIES: [ZQP01][REPLIES] then [req][body] pairs (docs/protocol.md §7 "Coalesced replies")
seed client_reply replies \
    ZQP01 REPLIES '$REQ' '{"req":$REQ,"id":"fz-task","get":true}' '$REQ' "$REC_OK" -- \
    ZQP01 REPLIES '$REQ' "$REC_OK" '99' '{"req":99}' -- ZQP01 REPLIES '$REQ' -- \
    ZQP01 REPLIES 'x1' '{}' '$REQ' '[1]' -- ZQP01 REPLIES '$REQ' '{"error":{"code":"EINTERNAL"},"req":$REQ}' '$REQ' "$REC_STARTED"
# packed REPLIES: [ZQP01][REPLIES]["req len\n" body ...] (fixed reqs: a length cannot follow $REQ)
seed client_reply packed \
    ZQP01 REPLIES $'1 12\n{"req":1,"a":}2 9\n{"req":2}3 8\n{"req":3' -- ZQP01 REPLIES '' -- \
    ZQP01 REPLIES $'7 99\n{}' -- ZQP01 REPLIES $'x 2\n{}' -- ZQP01 REPLIES $'4 2\n{}5 2 {}' -- \
    ZQP01 REPLIES $'99999999999999999 2\n{}' -- ZQP01 REPLIES $'6 2\n[]6 9\n{"req":6}'
seed client_reply odd ZQP01 TASK '{"req":$REQ}' -- ZQP01 REPLY '{"req":-1}' -- ZQP01 REPLY '{"req":"$REQ"}' -- \
    ZQP02 REPLY '{}' -- ZQP01 REPLY '{"req":$REQ,"error":"flat"}'

# --- monitor: [method][path][body][?arg=value | Header: value]..., then the answers
seed flower_http tasks GET /api/tasks '' '?limit=10' '?offset=0' '?state=success' '?sort_by=-received' \
    '?taskname=All' '?received_start=2026-01-01 00:00' '?received_end=2026-12-31T00:00:00Z' '?search=add' -- \
    ZQP01 REPLY "$TASKS"
seed flower_http tasks_list GET /api/tasks '' '?format=list' '?workername=w1@fuzz' -- ZQP01 REPLY "$TASKS"
seed flower_http task_info GET /api/task/info/fz-task -- ZQP01 REPLY "$REC_OK" -- ZQP01 REPLY "$TASKS"
seed flower_http task_result GET /api/task/result/fz-task '' '?timeout=1' -- ZQP01 REPLY "$REC_STARTED" -- \
    ZQP01 REPLY "$REC_FAIL"
seed flower_http apply POST /api/task/async-apply/tasks.add \
    '{"args":[1,2],"kwargs":{"a":1},"countdown":1.5,"expires":60,"queue":"celery","task_id":"fz-1","priority":3}' \
    'Origin: http://127.0.0.1:5555' 'Host: 127.0.0.1:5555' 'Sec-Fetch-Site: same-origin' -- \
    ZQP01 REPLY "{\"req\":\$REQ,\"workers\":[$WORKER]}" -- ZQP01 REPLY '{"req":$REQ,"id":"fz-1"}'
seed flower_http apply_sync POST /api/task/apply/tasks.add '{"args":[1,2],"eta":"2026-11-26T12:00:00Z"}' -- \
    ZQP01 REPLY '{"req":$REQ,"workers":[]}' -- ZQP01 REPLY '{"req":$REQ,"id":"fz-2"}' -- \
    ZQP01 REPLY "$REC_OK"
seed flower_http send_task POST /api/task/send-task/any.name '{"expires":"2030-01-01T00:00:00Z"}' -- \
    ZQP01 REPLY '{"req":$REQ,"id":"fz-3"}'
seed flower_http revoke POST /api/task/revoke/fz-task '' '?terminate=true' '?signal=KILL' -- \
    ZQP01 REPLY "$REC_STARTED" -- ZQP01 REPLY '{"req":$REQ,"revoked":["fz-task"]}'
seed flower_http workers GET /api/workers '' '?workername=w1@fuzz' '?refresh=1' '?status=0' -- \
    ZQP01 REPLY "{\"req\":\$REQ,\"workers\":[$WORKER]}" -- ZQP01 REPLY "$STATS" -- \
    ZQP01 REPLY '{"req":$REQ,"worker":"w1@fuzz","method":"active","reply":[]}' -- \
    ZQP01 REPLY '{"req":$REQ,"worker":"w1@fuzz","method":"reserved","reply":[{"id":"x"}]}'
seed flower_http workers_status GET /api/workers '' '?status=true' -- \
    ZQP01 REPLY "{\"req\":\$REQ,\"workers\":[$WORKER]}" -- ZQP01 REPLY "$STATS"
seed flower_http stats GET /api/stats -- ZQP01 REPLY "$STATS" -- ZQP01 REPLY "$QUEUES" -- \
    ZQP01 REPLY "{\"req\":\$REQ,\"workers\":[$WORKER]}"
seed flower_http metrics GET /metrics -- ZQP01 REPLY "{\"req\":\$REQ,\"workers\":[$WORKER]}" -- \
    ZQP01 REPLY "$STATS" -- ZQP01 REPLY "$QUEUES"
seed flower_http queues GET /api/queues/length -- ZQP01 REPLY "$QUEUES"
seed flower_http types GET /api/task/types -- ZQP01 REPLY "{\"req\":\$REQ,\"workers\":[$WORKER]}"
seed flower_http pool_grow POST /api/worker/pool/grow/w1@fuzz '' '?n=2' -- \
    ZQP01 REPLY "{\"req\":\$REQ,\"workers\":[$WORKER]}" -- \
    ZQP01 REPLY '{"req":$REQ,"error":{"code":"EINVAL","message":"INSPECT: unknown method '"'"'pool_grow'"'"'"}}'
seed flower_http pages GET /tasks '' 'Authorization: Basic dXNlcjpwYXNz'
seed flower_http static GET /static/app.js
seed flower_http events GET /api/events '' 'Last-Event-ID: 3'
seed flower_http bad POST /api/task/async-apply/tasks.add '{"args":1}' 'Origin: http://evil.example'
seed flower_http health HEAD /healthcheck
