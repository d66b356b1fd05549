"""OSCQuery over real HTTP on loopback, checked against the proposal's fields and the protocol table."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from bridge.osc.server import Server
from bridge.protocol import BY_PATH, TABLE

from .conftest import Client

P = "/wavestack"


@pytest.fixture
def served(tmp_path, tiny_model) -> Iterator[tuple[Server, str]]:
    srv = Server(port=0, project=str(tmp_path / "project"), oscquery_port=0)
    srv.start()
    host, port = srv.oscquery.address
    yield srv, f"http://{host}:{port}"
    srv.shutdown()


def get(url: str) -> tuple[int, object]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            body = r.read()
            assert not body or r.headers["Content-Type"] == "application/json"
            return r.status, json.loads(body) if body else None
    except urllib.error.HTTPError as e:
        return e.code, None


def walk(node: dict) -> Iterator[dict]:
    yield node
    for child in node.get("CONTENTS", {}).values():
        yield from walk(child)


def test_the_tree_lists_every_protocol_address_with_the_proposals_fields(served):
    _, url = served
    status, root = get(url + "/")
    assert status == 200 and root["FULL_PATH"] == "/"
    nodes = {n["FULL_PATH"]: n for n in walk(root)}
    for address in TABLE:
        node = nodes[address.full]
        assert node["DESCRIPTION"] == address.help
        assert node.get("TYPE", "") == address.typetags
        readable = address.group == "session" and any(arg.field for arg in address.args)
        assert node["ACCESS"] == (0 if not address.args else 3 if readable else 2)
        assert len(node.get("RANGE", [])) == len(address.args)
    for path, node in nodes.items():  # every node knows its own path, every container its children
        assert node["FULL_PATH"] == path
        for name, child in node.get("CONTENTS", {}).items():
            assert child["FULL_PATH"] == path.rstrip("/") + "/" + name
    assert nodes[P + "/tempo"]["RANGE"] == [{"MIN": 20, "MAX": 300}]
    assert nodes[P + "/rate"]["RANGE"] == [{"VALS": [44100, 48000, 96000]}]
    assert nodes[P + "/tempo"]["VALUE"] == [120.0] and nodes[P + "/tempo"]["ACCESS"] == 3
    generate = nodes[P + "/generate"]  # write-only: a placeholder value per argument, nothing to read
    assert generate["ACCESS"] == 2 and generate["VALUE"] == [None] * len(BY_PATH[P + "/generate"].args)
    assert nodes[P + "/ping"]["ACCESS"] == 0 and "VALUE" not in nodes[P + "/ping"]
    follow = nodes[P + "/follow"]  # a plain container: /follow/set and /follow/status
    assert "TYPE" not in follow and set(follow["CONTENTS"]) == {"set", "status"}


def test_values_follow_the_session_and_attributes_answer_alone(served):
    server, url = served
    client = Client(server.address)
    try:
        client.ask(f"{P}/tempo", 93.5)
        client.ask(f"{P}/meter", 7, 8)
        client.ask(f"{P}/track/add", "keys", "tiny")
        client.ask(f"{P}/track/seed", "keys", 42)
    finally:
        client.close()
    assert get(url + P + "/tempo?VALUE") == (200, {"VALUE": [93.5]})
    assert get(url + P + "/meter?VALUE") == (200, {"VALUE": [7, 8]})
    assert get(url + P + "/tracks/keys/seed") [1]["VALUE"] == [42]
    assert get(url + P + "/tracks/keys/model?VALUE") == (200, {"VALUE": ["tiny"]})
    assert get(url + P + "/tempo?TYPE") == (200, {"TYPE": "f"})
    assert get(url + P + "/generate?VALUE") == (200, {"VALUE": [None]})  # write-only: nothing known
    assert get(url + P + "/ping?VALUE") == (204, None)  # the node has no value
    assert get(url + P + "/nowhere")[0] == 404
    assert get(url + P + "/tempo?COLOUR")[0] == 400
    req = urllib.request.Request(url + P + "/tempo", data=b"{}", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(req, timeout=5)
    assert refused.value.code == 405


def test_host_info_names_the_osc_port_and_extensions(served):
    server, url = served
    status, info = get(url + "/?HOST_INFO")
    assert status == 200
    osc = (info["OSC_IP"], info["OSC_PORT"], info["OSC_TRANSPORT"])
    assert osc == ("127.0.0.1", server.address[1], "UDP")
    assert info["EXTENSIONS"]["VALUE"] is True and info["EXTENSIONS"]["LISTEN"] is False
    assert server.oscquery.address[0] == "127.0.0.1"


def test_a_server_stopped_before_it_started_shuts_down_at_once(tmp_path, tiny_model):
    import threading

    srv = Server(port=0, project=str(tmp_path / "project"), oscquery_port=0)
    stopper = threading.Thread(target=srv.shutdown)
    stopper.start()
    stopper.join(timeout=5)
    assert not stopper.is_alive()


OSC_RESERVED = set(" #*,?[]{}")


def test_every_node_is_a_legal_osc_path_and_every_value_has_an_entry_per_type_tag(served):
    srv, url = served
    client = Client(srv.address)
    try:
        assert client.ask(f"{P}/track/add", "my keys", "tiny")[0] == f"{P}/ack"  # a name with a space
        assert client.ask(f"{P}/track/bars", "my keys", 2.0)[0] == f"{P}/ack"  # its seconds: unset
    finally:
        client.close()
    status, root = get(url + "/")
    assert status == 200
    for node in walk(root):
        assert not set(node["FULL_PATH"]) & OSC_RESERVED, node["FULL_PATH"]
        if "VALUE" in node:
            assert len(node["VALUE"]) == len(node["TYPE"]), node["FULL_PATH"]
    seconds = get(url + "/wavestack/tracks/my%2520keys/seconds")[1]
    assert seconds["VALUE"] == [None] and get(url + "/wavestack/tracks/my%2520keys/bars")[1]["VALUE"] == [2.0]
    assert get(url + "/wavestack/ping?VALUE")[0] == 204  # a method without a value


def test_the_server_speaks_http_1_1(served):
    import http.client

    _, url = served
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for _ in range(2):  # one connection, two requests
            conn.request("GET", "/?HOST_INFO")
            response = conn.getresponse()
            assert response.status == 200 and response.version == 11
            assert json.loads(response.read())["OSC_TRANSPORT"] == "UDP"
    finally:
        conn.close()


def test_a_request_for_another_host_name_is_refused_and_reveals_nothing(served):
    import socket

    srv, url = served
    host, port = url.removeprefix("http://").split(":")

    def ask(host_header: str | None) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        conn.putrequest("GET", "/", skip_host=True)
        if host_header is not None:
            conn.putheader("Host", host_header)
        conn.endheaders()
        answer = conn.getresponse()
        body = answer.read()
        conn.close()
        return answer.status, body

    for name in (f"evil.example:{port}", "evil.example", f"localhost.evil.example:{port}"):
        status, body = ask(name)  # a web page whose name was made to resolve to 127.0.0.1
        assert status == 403 and b"CONTENTS" not in body and srv.session.project.encode() not in body
    for name in (f"127.0.0.1:{port}", f"localhost:{port}", f"[::1]:{port}", socket.gethostname(), None):
        status, body = ask(name)
        assert status == 200 and b"CONTENTS" in body and srv.session.project.encode() in body


def test_half_sent_requests_hold_a_bounded_number_of_connections(served):
    import socket
    import threading

    from bridge.osc import oscquery

    srv, url = served
    host, port = url.removeprefix("http://").split(":")
    before = threading.active_count()
    idle = []
    try:
        for _ in range(oscquery.MAX_CONNECTIONS * 3):  # each sends half a request and waits
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"GET / HTTP/1.1\r\n")
            idle.append(s)
        time.sleep(0.3)
        assert threading.active_count() - before <= oscquery.MAX_CONNECTIONS
        assert srv.oscquery._thread.is_alive()
    finally:
        for s in idle:
            s.close()
    def answered() -> bool:
        try:
            return get(url + "/?HOST_INFO")[0] == 200
        except (OSError, http.client.HTTPException):  # closed at once while the slots were full
            return False

    deadline = time.monotonic() + 10  # the slots come back once those connections are gone
    while not answered() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert answered()


def test_a_real_oscquery_client_reads_the_tree_and_the_host_info(served):
    pytest.importorskip("pythonoscquery", reason="python-oscquery is part of the test extra")
    import socket

    from pythonoscquery.osc_query_client import OSCQueryClient
    from zeroconf import ServiceInfo

    srv, _ = served
    client = Client(srv.address)
    try:
        assert client.ask(f"{P}/track/add", "my keys", "tiny")[0] == f"{P}/ack"
    finally:
        client.close()
    host, port = srv.oscquery.address
    info = ServiceInfo("_oscjson._tcp.local.", "wavestack._oscjson._tcp.local.", port=port,
                       addresses=[socket.inet_aton(host)], server="wavestack.local.")
    query = OSCQueryClient(info)
    root = query.query_node("/")  # the library builds its node objects from the whole tree

    def paths(node):
        yield node.full_path
        for child in node.contents or []:
            yield from paths(child)

    found = set(paths(root))
    assert {a.full for a in TABLE} <= found and f"{P}/tracks/my%20keys/seed" in found
    tempo = query.query_node(f"{P}/tempo")
    assert tempo.attributes[next(k for k in tempo.attributes if k.name == "VALUE")] == [120.0]
    host_info = query.get_host_info()
    assert host_info.osc_port == srv.address[1]


def test_the_tree_is_built_once_per_version_of_the_session(served, monkeypatch):
    from bridge.osc import oscquery

    built = []
    real = oscquery.namespace
    monkeypatch.setattr(oscquery, "namespace", lambda state: built.append(1) or real(state))
    srv, url = served
    for _ in range(5):
        assert get(url + "/")[0] == 200 and get(url + P + "/tempo?VALUE")[1] == {"VALUE": [120.0]}
    assert len(built) == 1
    client = Client(srv.address)
    try:
        client.ask(f"{P}/tempo", 90.0)
    finally:
        client.close()
    assert get(url + P + "/tempo?VALUE")[1] == {"VALUE": [90.0]} and get(url + "/")[0] == 200
    assert len(built) == 2
