"""The labelled scatter plot that benchmark.py and compare.py draw. matplotlib is
optional: without it the plot is skipped with a message saying how to get it."""


def labelled_scatter(points, path, xlabel, ylabel, log_y=False):
    """Plot ``(x, y, label)`` points (log x axis) to ``path``; returns what happened."""
    try:
        import matplotlib
        matplotlib.use('Agg')
        import matplotlib.pyplot as plt
    except ImportError:
        return f'matplotlib is not installed: skipped the plot {path} (pip install matplotlib to get it)'
    fig, ax = plt.subplots(figsize=(7, 5))
    for x, y, label in points:
        ax.scatter(x, y)
        ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords='offset points')
    ax.set_xscale('log')
    if log_y:
        ax.set_yscale('log')
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, which='both', alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return f'wrote {path}'
