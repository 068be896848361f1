#!/usr/bin/env bash
# `make run`: the whole path on one machine. Orthanc (with its DICOMweb plugin) plays the PACS
# on loopback; the node receives a phantom echo study from dcmtk's storescu, waits for the study
# to go quiet, processes it and sends the SR and overlays to Orthanc. Prints what each clip was
# taken for, each measurement beside the phantom's truth and where to view the results, ending
# with the study in the node's own OHIF viewer (and a read token to sign in with), then keeps
# both running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
DEMO=${ECHO_NODE_DEMO_DIR:-$PWD/demo}
PORT=${ECHO_NODE_DIMSE_PORT:-11112}
QUIET_S=${ECHO_NODE_STABLE_AFTER_S:-3}
WAIT_S=${DEMO_WAIT_S:-600}
# Not a node setting: the node refuses ECHO_NODE_* variables it does not know.
unset ECHO_NODE_DEMO_DIR

free_port() { "$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Debian's orthanc package runs its own service on 4242/8042: the demo's gets free ports.
ORTHANC_DICOM_PORT=${ORTHANC_DICOM_PORT:-$(free_port)}
ORTHANC_HTTP_PORT=${ORTHANC_HTTP_PORT:-$(free_port)}
ORTHANC_URL="http://127.0.0.1:$ORTHANC_HTTP_PORT"
DICOMWEB_PLUGIN=/usr/share/orthanc/plugins/libOrthancDicomWeb.so

rm -rf "$DEMO"
mkdir -p "$DEMO/orthanc"
export TCP_NODELAY=1  # dcmtk stalls ~50 ms per message without it

NODE="" ORTHANC=""
stop_all() {
  [ -n "$NODE" ] && kill -TERM "$NODE" 2>/dev/null && wait "$NODE" 2>/dev/null
  [ -n "$ORTHANC" ] && kill -TERM "$ORTHANC" 2>/dev/null && wait "$ORTHANC" 2>/dev/null
  return 0
}
trap stop_all EXIT
trap 'exit 130' INT TERM

echo "== generating a phantom echo study (PLAX, A4C, CW and PW Doppler) in $DEMO/phantom"
"$BIN/echo-node" phantom --out "$DEMO/phantom" --seed 1

echo "== starting Orthanc (the PACS): AE ORTHANC on 127.0.0.1:$ORTHANC_DICOM_PORT, $ORTHANC_URL"
cat >"$DEMO/orthanc/orthanc.json" <<EOF
{
  "Name": "Echo Node demo PACS",
  "DicomAet": "ORTHANC",
  "DicomPort": $ORTHANC_DICOM_PORT,
  "HttpPort": $ORTHANC_HTTP_PORT,
  "StorageDirectory": "$DEMO/orthanc/storage",
  "IndexDirectory": "$DEMO/orthanc/storage",
  "RemoteAccessAllowed": false,
  "AuthenticationEnabled": false,
  "Plugins": ["$DICOMWEB_PLUGIN"],
  "DicomWeb": {"Enable": true, "Root": "/dicom-web/"}
}
EOF
Orthanc "$DEMO/orthanc/orthanc.json" >"$DEMO/orthanc.log" 2>&1 &
ORTHANC=$!
for _ in $(seq 150); do
  curl -sf "$ORTHANC_URL/system" >/dev/null && break
  kill -0 "$ORTHANC" 2>/dev/null || { cat "$DEMO/orthanc.log"; exit 1; }
  sleep 0.2
done
curl -sf "$ORTHANC_URL/system" >/dev/null || { echo "Orthanc did not start"; exit 1; }

export ECHO_NODE_DATA_DIR="$DEMO/data" ECHO_NODE_BIND=127.0.0.1 ECHO_NODE_DIMSE_PORT="$PORT"
export ECHO_NODE_HTTP_ENABLED=true ECHO_NODE_HTTP_PORT=${ECHO_NODE_HTTP_PORT:-$(free_port)}
export ECHO_NODE_STABLE_AFTER_S="$QUIET_S" ECHO_NODE_SWEEP_INTERVAL_S=${ECHO_NODE_SWEEP_INTERVAL_S:-1}
# The demo's study is a few MB: a developer's disk fuller than the production watermark
# (10 % / 5 GB free, config/default.toml) must not make the node refuse it.
export ECHO_NODE_DISK_MIN_FREE_PERCENT=${ECHO_NODE_DISK_MIN_FREE_PERCENT:-0}
export ECHO_NODE_DISK_MIN_FREE_GB=${ECHO_NODE_DISK_MIN_FREE_GB:-0.5}
export ECHO_NODE_DESTINATIONS="[{\"name\": \"orthanc\", \"kind\": \"dimse\", \"ae_title\": \"ORTHANC\", \"host\": \"127.0.0.1\", \"port\": $ORTHANC_DICOM_PORT}]"
echo "== starting the node: AE ECHONODE on 127.0.0.1:$PORT, DICOMweb and OHIF on http://127.0.0.1:$ECHO_NODE_HTTP_PORT, results to Orthanc, quiet period ${QUIET_S}s"
"$BIN/echo-node" serve >"$DEMO/node.log" 2>&1 &
NODE=$!
for _ in $(seq 300); do
  echoscu -aec ECHONODE 127.0.0.1 "$PORT" 2>/dev/null && break
  kill -0 "$NODE" 2>/dev/null || { cat "$DEMO/node.log"; exit 1; }
  sleep 0.2
done
echo "== echoscu: the node answers C-ECHO"

echo "== pushing the study with storescu"
find "$DEMO/phantom" -name '*.dcm' -print0 | sort -z | xargs -0 storescu -xy -aet DEMOSCU -aec ECHONODE 127.0.0.1 "$PORT"
"$BIN/echo-node" studies

# A read token for the viewer's sign-in page (printed once; only its hash is kept).
VIEWER_TOKEN=$("$BIN/echo-node" tokens add --scope read --name "make run viewer" | tail -n 1)

echo "== waiting for the study to go quiet (${QUIET_S}s), be processed and reach Orthanc"
DEMO_DIR="$DEMO" ORTHANC_URL="$ORTHANC_URL" WAIT_S="$WAIT_S" "$BIN/python" - <<'EOF'
"""Wait for the job and its deliveries, then print clips, measurements vs truth, and results."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
from rich.console import Console
from rich.table import Table

demo, orthanc = Path(os.environ["DEMO_DIR"]), os.environ["ORTHANC_URL"]
echo_node = str(Path(sys.executable).parent / "echo-node")
console = Console()
# Phantom truth units → the units findings are reported in.
FACTORS = {("m/s", "cm/s"): 100.0, ("cm/s", "m/s"): 0.01}


def cli(*args: str) -> object:
    out = subprocess.run([echo_node, *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


deadline = time.monotonic() + float(os.environ["WAIT_S"])
detail: dict = {}
while time.monotonic() < deadline:
    jobs = cli("jobs", "--json")
    finished = [j for j in jobs if j["state"] in ("done", "skipped", "failed")]
    if finished:
        detail = cli("jobs", "show", str(finished[0]["id"]), "--json")
        states = {d["state"] for o in detail["outputs"] for d in o["deliveries"]}
        if not states - {"sent", "failed"}:
            break
    time.sleep(1)
else:
    sys.exit(f"no finished job with its results delivered within {os.environ['WAIT_S']} s")

console.print(f"job {detail['id']}: [bold]{detail['state']}[/bold] in {detail['seconds']} s — "
              f"{detail['message'] or detail['error']}")
truths = {}
for path in sorted((demo / "phantom").rglob("*.json")):
    document = json.loads(path.read_text())
    truths[document["sop_instance_uid"]] = document

clips = Table(title="Clips")
for column in ("clip", "view", "decided by", "confidence", "pipelines"):
    clips.add_column(column)
def clip_name(uid: str) -> str:
    return truths.get(uid, {}).get("file", uid)


for clip in sorted(detail["clips"], key=lambda c: clip_name(c["sop_instance_uid"])):
    name = clip_name(clip["sop_instance_uid"])
    pipelines = ", ".join(f"{p['pipeline']}: {p['status']}" for p in clip["pipelines"])
    clips.add_row(name, clip["view"], clip["decided_by"], f"{clip['confidence']:.2f}",
                  pipelines or clip.get("message") or clip.get("reason") or "")
console.print(clips)

values = Table(title="Measurements and the phantom's ground truth")
for column in ("clip", "measurement", "node", "truth", "difference", "by"):
    values.add_column(column, justify="right" if column in ("node", "truth", "difference") else "left")
for finding in detail["findings"]:
    document = truths.get(finding["sop_instance_uid"], {})
    expected = document.get("expected", {}).get(finding["name"])
    value = finding["value"]
    if finding["unit"] in ("cm/s", "m/s"):
        value = abs(value)  # a peak velocity is shown, as the SR writes it, as a speed
    shown = f"{value:.3g} {finding['unit']}"
    if expected is None:
        values.add_row(document.get("file", "?"), finding["name"], shown, "-", "-", finding["model"])
        continue
    want = expected["value"] * FACTORS.get((expected["unit"], finding["unit"]), 1.0)
    difference = (abs(value) - want) / want * 100 if want else float("nan")
    values.add_row(document["file"], finding["name"], shown,
                   f"{want:.3g} {finding['unit']}", f"{difference:+.1f} %", finding["model"])
console.print(values)

results = Table(title=f"Results in Orthanc ({orthanc})")
for column in ("kind", "SOP Instance UID", "delivery", "view in Orthanc"):
    results.add_column(column, overflow="fold")
for output in detail["outputs"]:
    found = httpx.post(f"{orthanc}/tools/lookup", content=output["sop_instance_uid"]).json()
    instance = next((item["ID"] for item in found if item["Type"] == "Instance"), None)
    where = f"{orthanc}/app/explorer.html#instance?uuid={instance}" if instance else "not there"
    delivery = ", ".join(f"{d['destination']}: {d['state']}" for d in output["deliveries"])
    results.add_row(output["kind"], output["sop_instance_uid"], delivery, where)
console.print(results)
study = httpx.post(f"{orthanc}/tools/lookup", content=detail["study_instance_uid"]).json()
for item in study:
    if item["Type"] == "Study":
        console.print(f"The study in Orthanc: {orthanc}/app/explorer.html#study?uuid={item['ID']}")
(demo / "study-uid").write_text(detail["study_instance_uid"])
EOF

echo
echo "Both are running (logs: $DEMO/node.log, $DEMO/orthanc.log)."
echo "Echo Node: AE ECHONODE, 127.0.0.1:$PORT, DICOMweb and viewer http://127.0.0.1:$ECHO_NODE_HTTP_PORT.  Orthanc: $ORTHANC_URL (AE ORTHANC, port $ORTHANC_DICOM_PORT)."
echo "Ctrl-C stops both."
echo
echo "The demo study in the node's OHIF viewer (sign in with the read token $VIEWER_TOKEN):"
echo "  http://127.0.0.1:$ECHO_NODE_HTTP_PORT/viewer/viewer?StudyInstanceUIDs=$(cat "$DEMO/study-uid")"
wait "$NODE"
