# `helm test` for greenloop's chart (templates/tests/validation-test.yaml runs it with
# python3 -c in greenloop's image): create a one-suite StagingValidation, wait until the
# operator reports it Ready, delete it. Standard library only; exit 0 on Ready, 1 when it
# stalls or on a timeout (with the object's phase and conditions), 2 when the API refuses a call.
import json
import os
import ssl
import sys
import time
import urllib.error
import urllib.request

SA = os.environ.get("TEST_SA_DIR", "/var/run/secrets/kubernetes.io/serviceaccount")
HOST = os.environ["KUBERNETES_SERVICE_HOST"]
PORT = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
NAMESPACE = os.environ["TEST_NAMESPACE"]
TIMEOUT = float(os.environ.get("TEST_TIMEOUT", "300"))
VALIDATION = json.loads(os.environ["TEST_VALIDATION"])
NAME = VALIDATION["metadata"]["name"]
SERVER = f"https://[{HOST}]:{PORT}" if ":" in HOST else f"https://{HOST}:{PORT}"
URL = f"{SERVER}/apis/greenloop.dev/v1alpha1/namespaces/{NAMESPACE}/stagingvalidations"
CONTEXT = ssl.create_default_context(cafile=os.path.join(SA, "ca.crt"))


def call(method, url, body=None, missing_ok=False):
    with open(os.path.join(SA, "token")) as f:  # re-read: the kubelet rotates it
        token = f.read().strip()
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, context=CONTEXT, timeout=15) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:
        if missing_ok and err.code == 404:
            return None
        detail = err.read(2000).decode("utf-8", "replace")
        print(f"helm test: {method} {url}: HTTP {err.code}: {detail}", file=sys.stderr)
        sys.exit(2)


def summary(obj):
    status = (obj or {}).get("status") or {}
    conditions = "; ".join(
        f"{c.get('type')}={c.get('status')} ({c.get('reason')}: {c.get('message')})"
        for c in status.get("conditions") or []
    )
    return f"phase {status.get('phase', '(none yet)')}; {conditions or 'no conditions yet'}"


def condition(obj, kind):
    conditions = ((obj or {}).get("status") or {}).get("conditions") or []
    return any(c.get("type") == kind and c.get("status") == "True" for c in conditions)


def main():
    call("DELETE", f"{URL}/{NAME}", missing_ok=True)  # left by an interrupted run
    deadline = time.monotonic() + 30
    while call("GET", f"{URL}/{NAME}", missing_ok=True) is not None:
        if time.monotonic() > deadline:
            print(f"helm test: {NAMESPACE}/{NAME} from an earlier run is not gone", file=sys.stderr)
            return 1
        time.sleep(1)
    call("POST", URL, VALIDATION)
    print(f"helm test: created StagingValidation {NAMESPACE}/{NAME}; waiting for Ready")
    obj = None
    try:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            obj = call("GET", f"{URL}/{NAME}")
            if condition(obj, "Ready"):
                print(f"helm test: {NAMESPACE}/{NAME} is Ready: {summary(obj)}")
                return 0
            if condition(obj, "Stalled"):  # greenloop gave up: no use waiting longer
                print(f"helm test: {NAMESPACE}/{NAME} stalled: {summary(obj)}", file=sys.stderr)
                return 1
            time.sleep(2)
        print(
            f"helm test: {NAMESPACE}/{NAME} not Ready after {TIMEOUT:.0f} s: {summary(obj)}",
            file=sys.stderr,
        )
        return 1
    finally:
        call("DELETE", f"{URL}/{NAME}", missing_ok=True)


sys.exit(main())
