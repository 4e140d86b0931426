"""python -m tests.fakes.kube_api [--port N] [--version 1.34.2] [--kubeconfig PATH]"""
import argparse
import time

from . import KubeAPI

parser = argparse.ArgumentParser(description="In-memory Kubernetes API server for debugging.")
parser.add_argument("--port", type=int, default=8001)
parser.add_argument("--version", default="1.34.2")
parser.add_argument("--rollout-delay", type=float, default=0.5)
parser.add_argument("--kubeconfig", help="also write a kubeconfig for it here")
args = parser.parse_args()
with KubeAPI(args.version, port=args.port, rollout_delay=args.rollout_delay) as cluster:
    if args.kubeconfig:
        cluster.kubeconfig(args.kubeconfig)
    print(f"serving the Kubernetes API at {cluster.url} (Ctrl-C stops)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
