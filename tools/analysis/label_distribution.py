# Label statistics of a synthetic set against a reference COCO json (paper
# Fig. 3b): category frequencies, box sizes, boxes per image, as PNGs; the
# KL divergence KL(reference || synthetic) of the category distributions is
# printed, with the Pearson correlation of the class counts.
#   python tools/analysis/label_distribution.py work_dirs/zsq_sets/x \
#       --ref ../shared/data/coco128/annotations/instances_train2017.json
import argparse
import os.path as osp
import sys

import numpy as np

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))

from tools._common.label_stats import (  # noqa: E402,F401
    class_frequency_correlation, kl_divergence, load, stats)


def plot(series, names, out):
    """Category-frequency bars and box-size / boxes-per-image histograms
    of each ``(label, freq, sizes, per_image)`` series; the PNG paths."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    def save(fig, ax, name):
        ax.legend()
        fig.tight_layout()
        paths.append(osp.join(out, f'{name}.png'))
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)

    paths = []
    fig, ax = plt.subplots(figsize=(18, 4))
    w = 0.8 / len(series)
    for i, (lab, f, _, _) in enumerate(series):
        ax.bar(np.arange(len(names)) + i * w, f / max(f.sum(), 1), w,
               label=lab)
    ax.set_xticks(np.arange(len(names)))
    ax.set_xticklabels(names, rotation=90, fontsize=6)
    ax.set_ylabel('fraction of boxes')
    save(fig, ax, 'category_frequency')
    for key, col, bins, xl in (('box_size', 2, np.linspace(0, 1, 21),
                                'sqrt(box area / image area)'),
                               ('boxes_per_image', 3, np.arange(0.5, 31.5),
                                'boxes per image')):
        fig, ax = plt.subplots(figsize=(6, 4))
        for s in series:
            ax.hist(s[col], bins=bins, density=True, alpha=0.5, label=s[0])
        ax.set_xlabel(xl)
        save(fig, ax, key)
    return paths


def main(argv=None):
    ap = argparse.ArgumentParser(description='label distribution plots')
    ap.add_argument('set', help='synthetic set dir or its annotations.json')
    ap.add_argument('--ref', help='reference COCO json (e.g. real train '
                    'labels)')
    ap.add_argument('--out', help='output dir (default: the set dir)')
    args = ap.parse_args(argv)
    try:
        syn = load(args.set)
        ref = load(args.ref) if args.ref else None
    except FileNotFoundError as e:
        sys.exit(f'error: {e}')
    names = [c['name'] for c in sorted(syn['categories'],
                                       key=lambda c: c['id'])]
    out = args.out or (args.set if osp.isdir(args.set) else
                       osp.dirname(args.set))
    fs, ss, bs = stats(syn, names)
    series = [('synthetic', fs, ss, bs)]
    if ref is not None:
        fr, sr, br = stats(ref, names)
        series.append(('reference', fr, sr, br))
        kl = kl_divergence(fr, fs)
        print(f'KL(reference || synthetic) over {len(names)} categories: '
              f'{kl:.4f}; Pearson r of the class counts: '
              f'{class_frequency_correlation(syn, ref):.3f}')
    paths = plot(series, names, out)
    print(f'{int(fs.sum())} boxes on {len(bs)} images, '
          f'{bs.mean():.2f} boxes/image, {(fs > 0).sum()} classes')
    for p in paths:
        print(p)


if __name__ == '__main__':
    main()
