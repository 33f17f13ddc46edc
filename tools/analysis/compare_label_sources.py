# Small measured Stage I job: one label source (ALS / MultiSample / Tile /
# Random / noise) on a config's teacher (a zsq config or a Stage-I-only one:
# train_cfg=mmzsq.ZSQTrainLoop with synthesis=...), then label-image
# agreement.
#   python tools/analysis/compare_label_sources.py CFG --variant als \
#       --num-images 16 --label-iters 100 --image-iters 40 --out work_dirs/cmp
# Every variant synthesises its final images with the same stage-B budget;
# only ALS spends an extra 160 px label-sampling stage (the baselines' labels
# do not change, so that stage would be wasted).
import argparse
import json
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.dirname(osp.dirname(osp.abspath(
    __file__)))))
import mmzsq  # noqa: E402,F401

SAMPLERS = dict(
    als=dict(type='mmzsq.RandomBoxSampler'),
    random=dict(type='mmzsq.RandomBoxSampler'),
    multisample=dict(type='mmzsq.MultiBoxSampler'),  # in-distribution
    tile=dict(type='mmzsq.TileBoxSampler', grids=[(1, 2), (2, 2), (2, 3)]),
    noise=dict(type='mmzsq.RandomBoxSampler'))


def main(argv=None):
    p = argparse.ArgumentParser()
    p.add_argument('config')
    p.add_argument('--variant', choices=list(SAMPLERS), default='als')
    p.add_argument('--num-images', type=int, default=16)
    p.add_argument('--batch-size', type=int, default=16)
    p.add_argument('--label-res', type=int, default=160)
    p.add_argument('--image-res', type=int, default=320)
    p.add_argument('--label-iters', type=int, default=100)
    p.add_argument('--image-iters', type=int, default=40)
    p.add_argument('--als-interval', type=int, default=10)
    p.add_argument('--lr', type=float, default=0.2)
    p.add_argument('--out', default='work_dirs/label_sources')
    args = p.parse_args(argv)
    from mmzsq.synthesis import DetectorAdapter
    from mmzsq.utils.cli import build_runner, load_config
    from tools._common.label_agreement import label_image_agreement
    cfg = load_config(args.config)
    syn = cfg.train_cfg.synthesis
    v = args.variant
    stages = [dict(resolution=args.image_res,
                   iters=0 if v == 'noise' else args.image_iters,
                   reinit_images=True)]
    if v == 'als':
        stages.insert(0, dict(resolution=args.label_res,
                              iters=args.label_iters, label_sampling=True))
        syn.als = dict(syn.als, interval=args.als_interval)
    else:
        syn.als = None
    syn.update(num_images=args.num_images, batch_size=args.batch_size,
               stages=stages, label_sampler=SAMPLERS[v], lr=args.lr,
               log_interval=10)
    set_dir = osp.join(args.out, v, '')
    cfg.train_dataloader.dataset.data_root = set_dir
    cfg.work_dir = osp.join(set_dir, 'logs')
    runner = build_runner(cfg)
    t0 = time.time()
    loop = runner.build_train_loop(cfg.train_cfg)  # Stage I
    elapsed = time.time() - t0
    stats = loop.synthesis_stats or dict(elapsed_s=elapsed)
    from mmzsq.synthesis import SyntheticSet
    coco = SyntheticSet(set_dir).read_index()
    n_img = len(coco['images'])
    img_iters = sum(s['iters'] for s in stages) * n_img
    import mmengine
    model = runner.model
    teacher = model.teacher if hasattr(model, 'load_teacher') else model
    agree = label_image_agreement(DetectorAdapter(teacher), set_dir)
    row = dict(variant=v, images=n_img, stages=stages,
               time_s=round(elapsed, 1),
               img_it_per_s=round(
                   img_iters / max(stats['elapsed_s'], 1e-9), 2),
               boxes_per_img=round(len(coco['annotations']) / n_img, 2),
               classes=len({a['category_id'] for a in coco['annotations']}),
               mAP50=round(agree['bbox_mAP_50'], 3),
               mAP=round(agree['bbox_mAP'], 3))
    print('RESULT ' + json.dumps(row))
    mmengine.mkdir_or_exist(args.out)
    with open(osp.join(args.out, 'results.jsonl'), 'a') as f:
        f.write(json.dumps(row) + '\n')


if __name__ == '__main__':
    main()
