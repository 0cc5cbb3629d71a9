"""kill -9 at any moment loses nothing acknowledged and leaves nothing half-written."""
import threading
import time

from conftest import Berth

WRITERS = 6
MAX_WRITES_EACH = 400
KILL_AFTER_S = 1.0


def test_kill9_loses_nothing_acknowledged(data_dir):
    cfg = data_dir / "config.toml"
    from conftest import CONFIG
    cfg.write_text(CONFIG)
    b = Berth(data_dir / "data", cfg).start()
    acked = {}  # family -> list of (revision, image)
    lock = threading.Lock()
    stop = threading.Event()

    def writer(i):
        ecs = b.client("ecs")
        fam = f"fam{i}"
        for n in range(MAX_WRITES_EACH):
            if stop.is_set():
                return
            image = f"img-{i}-{n}"
            try:
                r = ecs.register_task_definition(family=fam, containerDefinitions=[
                    {"name": "c", "image": image, "memory": 8}])
                if i == 0:
                    ecs.create_cluster(clusterName=f"cl{n}")
            except Exception:
                return  # the server died under us: this call was never acknowledged
            with lock:
                acked.setdefault(fam, []).append((r["taskDefinition"]["revision"], image))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    time.sleep(KILL_AFTER_S)
    b.kill9()
    stop.set()
    for t in threads:
        t.join(timeout=30)
    total = sum(len(v) for v in acked.values())
    assert total > 50, f"only {total} writes were acknowledged before the kill"

    b2 = Berth(data_dir / "data", cfg).start()
    try:
        ecs = b2.client("ecs")
        for fam, revs in acked.items():
            for rev, image in revs:
                td = ecs.describe_task_definition(taskDefinition=f"{fam}:{rev}")["taskDefinition"]
                assert td["containerDefinitions"][0]["image"] == image
            # Every stored revision is whole, and revisions are 1..n without gaps.
            arns = [a for p in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=fam)
                    for a in p["taskDefinitionArns"]]
            numbers = [int(a.rsplit(":", 1)[1]) for a in arns]
            assert numbers == list(range(1, len(numbers) + 1))
            assert len(numbers) >= len(revs)
        clusters = {a.rsplit("/", 1)[1] for p in ecs.get_paginator("list_clusters").paginate()
                    for a in p["clusterArns"]}
        created = len(acked.get("fam0", []))
        # Writer 0 creates cl{n} right after each acknowledged registration n (all but maybe the last).
        assert {f"cl{n}" for n in range(max(created - 1, 0))} <= clusters
        # The restarted server goes on counting where it stopped.
        fam = next(iter(acked))
        nxt = ecs.register_task_definition(family=fam, containerDefinitions=[{"name": "c", "image": "i", "memory": 8}])
        assert nxt["taskDefinition"]["revision"] == len(numbers_for(ecs, fam))
    finally:
        b2.stop()


def numbers_for(ecs, fam):
    return [a for p in ecs.get_paginator("list_task_definitions").paginate(familyPrefix=fam)
            for a in p["taskDefinitionArns"]]
