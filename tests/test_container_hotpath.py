"""The serving runtime's hot path: ``GET /ping`` and ``POST /invocations`` as plain WSGI.

``predictor.HotPath`` answers ordinary requests without Flask's request machinery and
hands everything else to the Flask app. Here each request of a list goes to both (the
hot path in front, and the Flask app alone) in one process of the program, and the
answers must be the same bytes: status line, headers in order, body. The requests the
hot path must answer itself are checked to have never reached Flask.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import REPO

PROGRAM_DIR = REPO / "container" / "iris_classifier"

#: Runs in the program's directory: each case through both apps, the answers as JSON lines.
COMPARE = r'''
import io, json, sys
import numpy as np
from werkzeug.test import EnvironBuilder, run_wsgi_app
import predictor

app = predictor.create_app()
hot = app.wsgi_app
assert isinstance(hot, predictor.HotPath), type(hot)
reached_flask = []
flask_app = hot.app
def counting(environ, start_response):
    reached_flask.append(environ["PATH_INFO"])
    return flask_app(environ, start_response)
hot.app = counting

def npy(rows):
    buffer = io.BytesIO(); np.save(buffer, np.array(rows)); return buffer.getvalue()

def answer(wsgi, case):
    builder = EnvironBuilder(path=case["path"], method=case["method"], headers=case.get("headers", {}),
                             data=case.get("body", b""))
    environ = builder.get_environ()
    environ.update(case.get("environ", {}))
    body_iter, status, headers = run_wsgi_app(wsgi, environ)
    return [status, list(headers.to_wsgi_list()), b"".join(body_iter).decode("latin-1")]

cases = json.loads(sys.stdin.read())
for case in cases:
    if case.get("npy"):
        case["body"] = npy(case["npy"])
    elif "body" in case:
        case["body"] = case["body"].encode("latin-1")
    if case.get("raises"):
        model = sys.modules["model"]
        original = model.predict
        def broken(fitted, rows, kind=case["raises"]):
            if kind == "http":
                from werkzeug.exceptions import UnprocessableEntity
                raise UnprocessableEntity()
            raise ValueError("this model cannot predict that")
        model.predict = broken
    try:
        reached_flask.clear()
        by_hot = answer(hot, case)
        went_to_flask = bool(reached_flask)
        by_flask = answer(flask_app, case)
    finally:
        if case.get("raises"):
            model.predict = original
    print(json.dumps({"name": case["name"], "hot": by_hot, "flask": by_flask,
                      "went_to_flask": went_to_flask}))
'''

ROW = "5.1,3.5,1.4,0.2\n"
#: (name, case, answered by the hot path itself)
CASES: list[tuple[dict[str, object], bool]] = [
    ({"name": "ping", "path": "/ping", "method": "GET"}, True),
    ({"name": "ping with a query", "path": "/ping", "method": "GET", "environ": {"QUERY_STRING": "a=1"}},
     True),
    ({"name": "one csv row", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "text/csv"}, "body": ROW}, True),
    ({"name": "rows, accept */*", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "text/csv", "Accept": "*/*"}, "body": ROW * 5}, True),
    ({"name": "csv with charset, accept json", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "Text/CSV; charset=utf-8", "Accept": "application/json"},
      "body": ROW * 2}, True),
    ({"name": "ranked accept", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "text/csv", "Accept": "application/jsonlines;q=0.5, text/*"},
      "body": ROW}, True),
    ({"name": "json array", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "application/json"}, "body": "[5.1, 3.5, 1.4, 0.2]"}, True),
    ({"name": "json instances", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "application/json", "Accept": "text/csv"},
      "body": '{"instances": [[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3]]}'}, True),
    ({"name": "jsonlines", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "application/jsonlines"},
      "body": '{"features": [5.1, 3.5, 1.4, 0.2]}\n[6.2, 2.9, 4.3, 1.3]\n'}, True),
    ({"name": "npy", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "application/x-npy", "Accept": "application/x-npy"},
      "npy": [[5.1, 3.5, 1.4, 0.2]]}, True),
    ({"name": "415", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "image/png"}, "body": ROW}, True),
    ({"name": "no content type", "path": "/invocations", "method": "POST", "body": ROW}, True),
    ({"name": "406", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "text/csv", "Accept": "image/png"}, "body": ROW}, True),
    ({"name": "empty body", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "text/csv"}, "body": "", "environ": {"CONTENT_LENGTH": "0"}}, True),
    ({"name": "wrong width", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "text/csv"}, "body": "1,2,3\n"}, True),
    ({"name": "not a number", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "text/csv"}, "body": "1,2,x,4\n"}, True),
    ({"name": "not utf-8", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "text/csv"}, "body": "1,2,\xff,4\n"}, True),
    ({"name": "a byte-order mark alone", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "text/csv"}, "body": "\xef\xbb\xbf"}, True),
    ({"name": "an integer past float's range", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "application/json"}, "body": "[" + "9" * 400 + ", 1, 2, 3]"}, True),
    ({"name": "the model raises", "path": "/invocations", "method": "POST", "raises": "value",
      "headers": {"Content-Type": "text/csv"}, "body": ROW}, True),
    ({"name": "the model raises an HTTP error", "path": "/invocations", "method": "POST", "raises": "http",
      "headers": {"Content-Type": "text/csv"}, "body": ROW}, True),
    ({"name": "client sent less than its Content-Length", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "text/csv"}, "body": ROW, "environ": {"CONTENT_LENGTH": "400"}},
     True),
    # handed to Flask, body unread
    # 7.4 MB: the limit is 6 MiB
    ({"name": "over the limit", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "text/csv"}, "body": ROW * 460_000}, False),
    ({"name": "chunked (no Content-Length)", "path": "/invocations", "method": "POST",
      "headers": {"Content-Type": "text/csv"}, "body": ROW, "environ": {"CONTENT_LENGTH": ""}}, False),
    ({"name": "GET /invocations", "path": "/invocations", "method": "GET"}, False),
    ({"name": "HEAD /ping", "path": "/ping", "method": "HEAD"}, False),
    ({"name": "POST /ping", "path": "/ping", "method": "POST"}, False),
    ({"name": "execution parameters", "path": "/execution-parameters", "method": "GET"}, False),
    ({"name": "unknown path", "path": "/nothing", "method": "GET"}, False),
]


def test_the_hot_path_answers_as_flask_does_byte_for_byte(opt_ml: Path) -> None:
    trained = subprocess.run([sys.executable, str(PROGRAM_DIR / "train")], capture_output=True, text=True,
                             env={**os.environ, "SAGEMAKER_BASE_DIR": str(opt_ml)}, timeout=300)
    assert trained.returncode == 0, trained.stderr[-2000:]
    cases = [case for case, _ in CASES]
    result = subprocess.run([sys.executable, "-c", COMPARE], input=json.dumps(cases), cwd=PROGRAM_DIR,
                            capture_output=True, text=True, timeout=120,
                            env={**os.environ, "SAGEMAKER_BASE_DIR": str(opt_ml),
                                 "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    answers = {line["name"]: line for line in map(json.loads, result.stdout.splitlines())}
    assert set(answers) == {str(case["name"]) for case, _ in CASES}
    for case, hot in CASES:
        got = answers[str(case["name"])]
        assert got["hot"] == got["flask"], case["name"]
        assert got["went_to_flask"] is not hot, case["name"]
    # and the answers are the ones the contract asks for
    assert answers["one csv row"]["hot"][0] == "200 OK"
    assert answers["one csv row"]["hot"][1] == [["Content-Type", "text/csv; charset=utf-8"],
                                               ["Content-Length", str(len(answers["one csv row"]["hot"][2]))]]
    assert answers["json array"]["hot"][1][0] == ["Content-Type", "application/json"]
    for name, status in [("415", 415), ("406", 406), ("empty body", 400), ("wrong width", 400),
                         ("a byte-order mark alone", 400), ("an integer past float's range", 400),
                         ("the model raises", 500), ("the model raises an HTTP error", 422),
                         ("over the limit", 413),
                         ("client sent less than its Content-Length", 400), ("GET /invocations", 405)]:
        assert answers[name]["hot"][0].startswith(f"{status} "), (name, answers[name]["hot"])
        assert answers[name]["hot"][1][0] == ["Content-Type", "text/plain; charset=utf-8"], name
    assert "ValueError: this model cannot predict that" in answers["the model raises"]["hot"][2]
    assert "Traceback" in result.stderr  # printed once per path, as the Flask app prints it


#: Runs in the program's directory: each body decoded as it is (one row: the fast path) and
#: after a leading blank line (the general path, which skips blank lines; after the byte-order
#: mark, if any), as JSON lines.
DECODE_BOTH = r'''
import json, sys
import payloads

def outcome(body, kind, width, missing):
    try:
        rows = payloads.decode(body, kind, width, accepts_missing=missing)
    except payloads.PayloadError as exc:
        return ["error", exc.status, str(exc)]
    return ["rows", rows.dtype.str, list(rows.shape), rows.tobytes().hex()]

for body in json.loads(sys.stdin.read()):
    body = body.encode("latin-1")
    for width in (4, None):
        for missing in (False, True):
            fast = outcome(body, payloads.CSV, width, missing)
            bom = b"\xef\xbb\xbf" if body.startswith(b"\xef\xbb\xbf") else b""  # stays first
            general = outcome(bom + b"\n" + body[len(bom):], payloads.CSV, width, missing)
            print(json.dumps({"body": body.decode("latin-1"), "width": width, "missing": missing,
                              "fast": fast, "general": general}))
'''

#: One-row CSV bodies, ordinary and odd: each must decode the same by either path.
ONE_ROWS = ["5.1,3.5,1.4,0.2", "5.1,3.5,1.4,0.2\n", "5.1,3.5,1.4,0.2\r\n", "5.1,3.5,1.4,0.2\n\n",
            " 5.1 , 3.5,1.4 ,0.2 ", "5,3,1,0", "5.1e0,3.5E-0,.14e1,2e-1", "-0,+1,1_0,0x1",
            "5.1,3.5,1.4", "5.1,3.5,1.4,0.2,9", "5.1,,1.4,0.2", "5.1,NaN,1.4,0.2", "5.1,nan,1.4,inf",
            "5.1,-Infinity,1.4,0.2", "5.1,1e999,1.4,0.2", "5.1,x,1.4,0.2", "\ufeff5.1,3.5,1.4,0.2",
            "5.1;3.5;1.4;0.2", "5.1,3.5,1.4,0.2\x0b", "5.1,3.5\x85,1.4,0.2", "5.1,3.5\u2028,1.4,0.2",
            "   ", ",,,", "1,2,3,4\t"]


def test_a_one_row_csv_body_decodes_the_same_by_the_fast_and_the_general_path() -> None:
    result = subprocess.run([sys.executable, "-c", DECODE_BOTH], cwd=PROGRAM_DIR, capture_output=True,
                            text=True, timeout=60, input=json.dumps([
                                body.encode("utf-8").decode("latin-1") for body in ONE_ROWS]),
                            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    outcomes = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(outcomes) == 4 * len(ONE_ROWS)
    for case in outcomes:
        assert case["fast"] == case["general"], case
    decoded = {(case["body"], case["width"], case["missing"]): case["fast"] for case in outcomes}
    assert decoded[("5.1,3.5,1.4,0.2\n", 4, False)][:3] == ["rows", "<f8", [1, 4]]
    assert decoded[("5.1,,1.4,0.2", 4, False)][:2] == ["error", 400]
    assert decoded[("5.1,,1.4,0.2", 4, True)][0] == "rows"
    assert decoded[("5.1,1e999,1.4,0.2", 4, True)][:2] == ["error", 400]


#: Runs in the program's directory: gunicorn's Response with and without one_write_per_answer,
#: each case's writes to a recording socket, as JSON lines.
WRITES = r'''
import json, types
from gunicorn import util
from gunicorn.config import Config
from gunicorn.http import wsgi
import gunicorn_hooks

util.http_date = lambda *args: "Mon, 07 Dec 2026 00:00:00 GMT"  # the same head twice

class Recording:
    def __init__(self): self.writes = []
    def sendall(self, data): self.writes.append(data.decode("latin-1"))

CASES = {
    "a body in one piece": ("POST", [("Content-Type", "text/csv"), ("Content-Length", "7")], [b"setosa\n"]),
    "an empty body (/ping)": ("GET", [("Content-Length", "0")], [b""]),
    "no body items": ("GET", [("Content-Length", "0")], []),
    "HEAD": ("HEAD", [("Content-Length", "3")], [b"abc"]),
    "a body in pieces": ("POST", [("Content-Length", "4")], [b"ab", b"cd"]),
    "chunked": ("POST", [("Content-Type", "text/plain")], [b"ab", b"cd"]),
}

def answer(method, headers, body):
    req = types.SimpleNamespace(version=(1, 1), method=method, should_close=lambda: False)
    sock = Recording()
    response = wsgi.Response(req, sock, Config())
    response.start_response("200 OK", headers)
    for piece in body:
        response.write(piece)
    response.close()
    return sock.writes

before = {name: answer(*case) for name, case in CASES.items()}
gunicorn_hooks.one_write_per_answer()
gunicorn_hooks.one_write_per_answer()  # a second call changes nothing
after = {name: answer(*case) for name, case in CASES.items()}
for name in CASES:
    print(json.dumps({"name": name, "before": before[name], "after": after[name]}))
'''


def test_a_worker_sends_the_head_with_the_first_body_bytes_in_one_write() -> None:
    result = subprocess.run([sys.executable, "-c", WRITES], cwd=PROGRAM_DIR, capture_output=True,
                            text=True, timeout=60, env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    cases = {case["name"]: case for case in map(json.loads, result.stdout.splitlines())}
    assert len(cases) == 6
    for name, case in cases.items():
        # every byte, in order, as gunicorn writes it
        assert "".join(case["after"]) == "".join(case["before"]), name
    one = cases["a body in one piece"]
    assert len(one["before"]) == 2 and one["after"] == ["".join(one["before"])]
    assert one["after"][0].startswith("HTTP/1.1 200 OK\r\n") and one["after"][0].endswith("\r\n\r\nsetosa\n")
    assert [len(case["after"]) for case in (cases["an empty body (/ping)"], cases["no body items"],
                                            cases["HEAD"])] == [1, 1, 1]
    pieces = cases["a body in pieces"]["after"]
    assert len(pieces) == 2 and pieces[0].endswith("\r\n\r\nab") and pieces[1] == "cd"
    chunked = cases["chunked"]
    assert chunked["after"] == chunked["before"]  # a chunked answer is written as before
    assert "Transfer-Encoding: chunked" in chunked["after"][0]
