"""Shards as Ray actors (`serve --cluster ray[://ADDRESS]`): each a named, detached actor (`shard-N` in the
`streamgenre` namespace) that Ray restarts where its process or node dies, so a coordinator restarted by systemd
finds its shards still running."""

from __future__ import annotations

import logging
import math
import re

import ray

from .shard import Shard

GPU_SHARE = 0.25  # of a GPU, asked for each shard where the engine or frontend runs on one
NAMESPACE = "streamgenre"

log = logging.getLogger("streamgenre.cluster")


def fitting_share(cluster_cpus: float, shards: int) -> float:
    """The CPUs each of `shards` shards can ask for so that all of them fit: at most 1, in hundredths."""
    return max(0.01, min(1.0, math.floor(100 * cluster_cpus / max(1, shards)) / 100))


def ray_address(cluster: str) -> str | None:
    """`ray` (a running cluster if there is one on this machine or in $RAY_ADDRESS, else a new local one) or
    `ray://HOST:PORT` (Ray Client); ValueError for anything else."""
    if cluster == "ray":
        return None
    if cluster.startswith("ray://"):
        return cluster
    raise ValueError(f"--cluster {cluster!r}: use ray or ray://HOST:PORT")


class RayDrain:
    """A drain in flight: `ready(timeout)`, then `result()` (raises where the actor died)."""

    def __init__(self, ref):
        self.ref = ref

    def ready(self, timeout: float) -> bool:
        return bool(ray.wait([self.ref], timeout=timeout)[0])

    def result(self) -> dict:
        return ray.get(self.ref)


class RayShards:
    """Shards on the Ray cluster at `address` (None: this machine's, or a new local one)."""

    def __init__(self, address: str | None):
        ray.init(address=address, namespace=NAMESPACE, include_dashboard=False, log_to_driver=False)
        self.actor_class = ray.remote(max_restarts=-1, max_task_retries=0)(Shard)
        self.gpus = 0.0

    def fit(self, settings: dict, shards: int) -> dict:
        """`settings` with the CPUs each shard asks for (`"auto"`: the share that lets all `shards` be placed) and
        the GPU share where the engine or frontend runs on a GPU."""
        resources = ray.cluster_resources()
        asked = settings["engine"] == "tensorrt" or settings["frontend"] == "gpu"
        auto = "auto" in (settings["engine"], settings["frontend"])
        self.gpus = GPU_SHARE if asked or (auto and resources.get("GPU", 0) > 0) else 0.0
        cpus = fitting_share(resources.get("CPU", 1), shards) if settings["cpus"] == "auto" else settings["cpus"]
        return settings | {"cpus": cpus, "threads": max(1, math.ceil(cpus))}

    def describe(self, settings: dict) -> str:
        return (f"Ray {ray.__version__}: {settings['cpus']} CPU{f' and {self.gpus} GPU' if self.gpus else ''} "
                f"each; cluster resources {ray.cluster_resources()}")

    def start(self, index: int, settings: dict, specs: list[str]):
        actor = self.actor_class.options(name=f"shard-{index}", lifetime="detached", get_if_exists=True,
                                         num_cpus=settings["cpus"], num_gpus=self.gpus).remote(index, settings, specs)
        actor.configure.remote(specs)  # a shard found from before (a restarted coordinator) is brought up to date
        return actor

    def configure(self, actor, specs: list[str]) -> None:
        actor.configure.remote(specs)

    def drain(self, actor, states: bool) -> RayDrain:
        return RayDrain(actor.drain.remote(states))

    def kill(self, actor) -> None:
        ray.kill(actor, no_restart=True)

    def stop_leftovers(self, needed: set[int]) -> None:
        """Shards a previous coordinator started and this one does not need (it has fewer streams now)."""
        for name in ray.util.list_named_actors():
            if re.fullmatch(r"shard-\d+", name) and int(name[6:]) not in needed:
                log.info("stopping %s, left from before and not needed now", name)
                ray.kill(ray.get_actor(name), no_restart=True)

    def unplaced(self, settings: dict) -> str | None:
        """Why a shard that never answered may not be placed: the CPUs it needs against those free, or None."""
        free = ray.available_resources().get("CPU", 0.0)
        if free >= settings["cpus"]:
            return None
        return (f"needs {settings['cpus']:g} CPU, the cluster has {free:g} free (shard_cpus, or more nodes)")

    def shutdown(self) -> None:
        ray.shutdown()
