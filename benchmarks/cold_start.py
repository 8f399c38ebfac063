"""Cold start: process start to first answer, for `partnerbot ask` and for `partnerbot serve`."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
from common import ROOT, free_port, machine, table, temp_dir

from partnerbot.index.build import build_index
from partnerbot.settings import Settings


def main() -> None:
    data = temp_dir("cold")
    build_index(Settings(data_dir=data, corpus_dir=ROOT / "corpus"))
    port = free_port()
    env = dict(os.environ, HF_HUB_OFFLINE="1", PARTNERBOT_DATA_DIR=str(data), PARTNERBOT_PORT=str(port))
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "partnerbot.cli", "ask", "What is HERO Corps?"], env=env, check=True,
                   capture_output=True)
    cli = time.perf_counter() - t0
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "partnerbot.cli", "serve"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        from gradio_client import Client

        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        up = time.perf_counter() - t0
        Client(f"http://127.0.0.1:{port}/", verbose=False).predict("What is HERO Corps?", [], api_name="/ask")
        first = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(15)
    print(f"Cold start; {machine()}\n")
    print(table(["path", "seconds"], [["`partnerbot ask` (process start to answer printed)", cli],
                                      ["`partnerbot serve` to listening", up],
                                      ["`partnerbot serve` to first `/ask` answer", first]]))


if __name__ == "__main__":
    main()
