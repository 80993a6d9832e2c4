"""The lab's persistent workflow: the CLI end to end, every rejected input naming its line,
a command killed inside its transaction, and two commands run at once."""

import csv
import os
import signal
import sqlite3
import subprocess
import sys
import time

import numpy as np
import pytest

from lutece.cli import main
from lutece.grouptesting.campaign import DATABASE, Campaign, CampaignError


def _write_csv(path, header, rows):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _people(tmp_path, count=12):
    return _write_csv(tmp_path / "people.csv", ["id", "prior"],
                      [[f"P{i:02d}", "0.2" if i == 3 else ""] for i in range(count)])


def _campaign(tmp_path, **kwargs):
    options = {"prevalence": 0.05, "max_pool_size": 4, "pools_per_cycle": 3,
               "num_particles": 300}
    options.update(kwargs)
    return Campaign.create(tmp_path / "camp", _people(tmp_path), **options)


def _results_for(tmp_path, pools, name="results.csv", positive=(0,)):
    return _write_csv(tmp_path / name, ["pool", "result"],
                      [[pool, "positive" if i in positive else "negative"]
                       for i, (pool, _) in enumerate(pools)])


def test_cli_workflow(tmp_path, capsys):
    people = _people(tmp_path)
    camp = tmp_path / "camp"
    assert main(["grouptest", "init", str(camp), "--people", str(people), "--prevalence",
                 "0.05", "--max-pool-size", "4", "--pools-per-cycle", "3",
                 "--particles", "300"]) == 0
    assert main(["grouptest", "next", str(camp), "--out", str(tmp_path / "pools.csv")]) == 0
    pools = list(csv.DictReader((tmp_path / "pools.csv").open()))
    assert len(pools) == 3 and all(1 <= len(p["members"].split()) <= 4 for p in pools)
    results = _write_csv(tmp_path / "results.csv", ["pool", "result"],
                         [[p["pool"], "positive" if i == 0 else "Negative"]
                          for i, p in enumerate(pools)])
    assert main(["grouptest", "record", str(camp), str(results)]) == 0
    capsys.readouterr()
    assert main(["grouptest", "status", str(camp)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["id", "prior", "P(infected)"] and len(table) == 13
    negative_members = set(pools[1]["members"].split()) - set(pools[0]["members"].split())
    for line in table[1:]:
        label, prior, probability = line.split()[:3]
        if label in negative_members:
            assert float(probability) < float(prior)   # a negative pool lowers the odds
    assert main(["grouptest", "export", str(camp)]) == 0
    exported = {p.name for p in (camp / "export").iterdir()}
    assert exported == {"people.csv", "pools.csv", "results.csv", "marginals.csv"}
    marginals = list(csv.DictReader((camp / "export" / "marginals.csv").open()))
    assert len(marginals) == 12 and {row["cycle"] for row in marginals} == {"1"}
    assert main(["grouptest", "next", str(camp)]) == 0   # cycle 2 can start
    assert "C002-P01" in capsys.readouterr().out


def test_rejected_inputs_name_the_line_and_change_nothing(tmp_path):
    campaign = _campaign(tmp_path)
    pools = campaign.next_pools()
    with pytest.raises(CampaignError, match="still await results"):
        campaign.next_pools()
    bad = [
        (["pool", "result"], [[pools[0][0], "positive"], ["C009-P01", "negative"]],
         "line 3: unknown pool 'C009-P01'"),
        (["pool", "result"], [[pools[0][0], "maybe"]], "line 2: result must be"),
        (["pool", "result"], [[pools[0][0], "positive"], [pools[0][0], "negative"]],
         "line 3: pool .* appears twice"),
        (["pool", "outcome"], [[pools[0][0], "positive"]], "columns 'pool' and 'result'"),
    ]
    for header, rows, message in bad:
        path = _write_csv(tmp_path / "bad.csv", header, rows)
        with pytest.raises(CampaignError, match=message):
            campaign.record(path)
    good = _results_for(tmp_path, pools)
    assert campaign.record(good) == 3
    with pytest.raises(CampaignError, match="line 2: pool .* already has a result"):
        campaign.record(good)
    with sqlite3.connect(tmp_path / "camp" / DATABASE) as connection:
        assert connection.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 3
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            connection.execute("DELETE FROM results")


@pytest.mark.parametrize(("rows", "message"), [
    ([["A", ""], ["A", ""]], "line 3: id 'A' appears twice"),
    ([["A", "1.5"]], "line 2: prior must be in"),
    ([["A", "high"]], "line 2: prior 'high' is not a number"),
    ([["", ""]], "line 2: empty id"),
])
def test_bad_people_files(tmp_path, rows, message):
    people = _write_csv(tmp_path / "people.csv", ["id", "prior"], rows)
    with pytest.raises(CampaignError, match=message):
        Campaign.create(tmp_path / "camp", people, 0.05)
    assert not (tmp_path / "camp" / DATABASE).exists()


def test_init_refuses_an_existing_campaign_and_open_refuses_a_plain_folder(tmp_path):
    _campaign(tmp_path)
    with pytest.raises(CampaignError, match="already exists"):
        _campaign(tmp_path)
    with pytest.raises(CampaignError, match="not a campaign folder"):
        Campaign(tmp_path)
    assert main(["grouptest", "status", str(tmp_path)]) == 2


def _lutece(*args, pause=None):
    env = dict(os.environ)
    if pause is not None:
        env["LUTECE_GROUPTEST_PAUSE"] = str(pause)
    return subprocess.Popen([sys.executable, "-m", "lutece", "grouptest", *map(str, args)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _write_locked(database) -> bool:
    connection = sqlite3.connect(database, timeout=0)
    try:
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:
        return True
    finally:
        connection.close()


def test_a_command_killed_inside_its_transaction_changes_nothing(tmp_path):
    campaign = _campaign(tmp_path)
    pools = campaign.next_pools()
    results = _results_for(tmp_path, pools)
    database = tmp_path / "camp" / DATABASE
    process = _lutece("record", tmp_path / "camp", results, pause=60)
    deadline = time.time() + 60
    while not _write_locked(database):   # wait until it holds the write transaction
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with sqlite3.connect(database) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert connection.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 0
        assert connection.execute("SELECT COUNT(*) FROM marginals").fetchone()[0] == 0
    assert Campaign(tmp_path / "camp").record(results) == 3   # nothing was lost or locked


def test_concurrent_commands_do_not_interleave(tmp_path):
    campaign = _campaign(tmp_path)
    pools = campaign.next_pools()
    same = _results_for(tmp_path, pools, "same.csv")
    first = _lutece("record", tmp_path / "camp", same, pause=1.5)
    second = _lutece("record", tmp_path / "camp", same, pause=1.5)
    outputs = [process.communicate(timeout=120) for process in (first, second)]
    codes = sorted(process.returncode for process in (first, second))
    assert codes == [0, 2], outputs
    assert any("already has a result" in err for _, err in outputs)
    with sqlite3.connect(tmp_path / "camp" / DATABASE) as connection:
        assert connection.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 3
        cycles = connection.execute("SELECT COUNT(DISTINCT cycle) FROM marginals").fetchone()
        assert cycles[0] == 1
    statuses = Campaign(tmp_path / "camp").status()
    assert np.isfinite([s.probability for s in statuses]).all()
