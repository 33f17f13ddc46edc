import os.path as osp

from setuptools import find_packages, setup


def readme():
    with open(osp.join(osp.dirname(__file__), 'README.md'),
              encoding='utf-8') as f:
        return f.read()


def version():
    ns = {}
    with open(osp.join(osp.dirname(__file__), 'mmzsq', 'version.py')) as f:
        exec(f.read(), ns)
    return ns['__version__']


def requirements(name):
    path = osp.join(osp.dirname(__file__), 'requirements', name)
    with open(path) as f:
        return [ln.split('#')[0].strip() for ln in f
                if ln.split('#')[0].strip() and not ln.startswith('-')]


setup(
    name='mmzsq',
    version=version(),
    description='Task-specific zero-shot quantization of OpenMMLab '
    'detectors (MMDetection / MMYOLO / MMRazor plugin)',
    long_description=readme(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    packages=find_packages(exclude=('tests', 'tests.*', 'configs', 'tools')),
    python_requires='>=3.8',
    # mmcv / OpenMMLab pins and torch are installed by `make install`
    # (see requirements/openmmlab.txt and tools/misc/build_mmcv.sh).
    install_requires=requirements('runtime.txt'),
    extras_require=dict(tests=requirements('tests.txt')),
    zip_safe=False,
)
