"""scripts/benchmark_training.py end to end at its tiniest: one process, a few iterations
of a narrow SGENet on generated pairs, through BasicSR's real trainer."""
import os

from basicsr_sgenet.tools.experiment_logs import parse_log_text, step_statistics
from conftest import REPO_ROOT, run_python

SCRIPT = os.path.join(REPO_ROOT, 'scripts', 'benchmark_training.py')
EXPECTED_COLUMNS = ['Config', 'Processes', 'Total batch', 'Step (ms)', 'it/s', 'Images/s', 'Data share (%)', 'Device']


def table_rows(markdown):
    lines = [line for line in markdown.splitlines() if line.startswith('|')]
    return [[cell.strip() for cell in line.strip('|').split('|')] for line in lines]


def test_tiny_single_process_benchmark_prints_and_writes_a_table(tmp_path):
    out = tmp_path / 'table.md'
    result = run_python([SCRIPT, '--width', '8,12,16', '--num-rdm', '1', '--crop', '32', '--batch', '2',
                         '--iters', '4', '--warmup', '1', '--nproc', '1', '--workers', '0', '--threads', '1',
                         '--images', '4', '--image-size', '40', '--device', 'cpu', '--workdir', str(tmp_path / 'work'),
                         '--out', str(out)], cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]

    rows = table_rows(out.read_text())
    assert rows[0] == EXPECTED_COLUMNS
    assert len(rows) == 3  # header, separator, one run
    row = dict(zip(rows[0], rows[2]))
    assert 'crop 32' in row['Config'] and 'fp32' in row['Config']
    assert row['Processes'] == '1' and row['Total batch'] == '2'
    assert float(row['it/s']) > 0
    assert abs(float(row['Images/s']) - 2 * float(row['it/s'])) < 0.1
    assert 0 <= float(row['Data share (%)']) <= 100
    assert row['Device'].startswith('CPU')
    assert out.read_text() in result.stdout  # the same table on stdout
    # The run went through BasicSR's trainer and logged every iteration.
    logs = list((tmp_path / 'work').glob('run01/experiments/*/train_*.log'))
    assert len(logs) == 1 and 'iter:       4,' in logs[0].read_text()


def test_per_iteration_times_come_back_from_basicsr_running_averages(monkeypatch):
    # Drive BasicSR's own AvgTimer with a fake clock for 450 iterations, past its window
    # restart, and log its averages the way MessageLogger does (3 decimals).
    import basicsr.utils.logger as basicsr_logger

    clock = [1000.0]
    monkeypatch.setattr(basicsr_logger.time, 'time', lambda: clock[0])
    step_seconds = [2.5] * 5 + [0.2 + 0.01 * (i % 7) for i in range(445)]
    data_seconds = [1.0] * 5 + [0.03] * 445
    data_timer, iter_timer = basicsr_logger.AvgTimer(), basicsr_logger.AvgTimer()
    lines = []
    for iteration, (step, data) in enumerate(zip(step_seconds, data_seconds), 1):
        clock[0] += data
        data_timer.record()
        clock[0] += step - data
        iter_timer.record()
        stamp = f'2024-05-01 10:{int(clock[0] // 60) % 60:02d}:{clock[0] % 60:06.3f}'.replace('.', ',')
        lines.append(f'{stamp} INFO: [bench..][epoch:  0, iter:{iteration:8,d}, lr:(2.000e-04,)] [eta: 0:00:01, '
                     f'time (data): {iter_timer.get_avg_time():.3f} ({data_timer.get_avg_time():.3f})] l_pix: 1e-2')
        data_timer.start()
        iter_timer.start()

    step, data, clock_step, measured = step_statistics(parse_log_text('\n'.join(lines)), warmup=5)
    assert measured == 445
    assert abs(step - sum(step_seconds[5:]) / 445) < 2e-3
    assert abs(data - 0.03) < 2e-3
    assert abs(clock_step - step) < 2e-3
