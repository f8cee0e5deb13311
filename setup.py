"""Packaging for sb3-swfp. Torch is a range: bring your own build (CPU or CUDA)."""

from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="sb3-swfp",
    version="0.2.0",
    description="Stepwise Flow Policy (SWFP): flow-matching policies with online JKO fine-tuning for Stable-Baselines3",
    long_description=long_description,
    long_description_content_type="text/markdown",
    # zoo_hyperparams/ (repository root) is shipped as sb3_swfp/zoo_hyperparams/ for sb3_swfp.zoo
    packages=[*find_packages(include=["sb3_swfp", "sb3_swfp.*"]), "sb3_swfp.zoo_hyperparams"],
    package_dir={"sb3_swfp.zoo_hyperparams": "zoo_hyperparams"},
    package_data={"sb3_swfp": ["py.typed"], "sb3_swfp.data": ["demos/*.npz"], "sb3_swfp.zoo_hyperparams": ["*.yml"]},
    python_requires=">=3.10",
    install_requires=[
        "stable-baselines3>=2.7,<3",
        "torch>=2.3,<3",
        "gymnasium>=1.0,<2",
        "numpy>=1.24",
    ],
    extras_require={
        "tests": ["pytest>=7", "pytest-xdist", "tensorboard", "tqdm", "rich"],
        "zoo": ["rl_zoo3>=2.7", "sb3-contrib>=2.7", "optuna>=3", "pyyaml", "pandas", "matplotlib", "seaborn", "scipy", "requests"],
        # imitation's trajectories are read without importing it (its releases pin old gymnasium/SB3)
        "demos": ["minari[hdf5]>=0.5"],
        "robotics": ["gymnasium-robotics>=1.4"],
        "video": ["gymnasium[classic-control]>=1.0,<2", "moviepy"],
        "examples": ["matplotlib", "tensorboard", "tqdm", "rich"],
        "mujoco": ["gymnasium[mujoco]>=1.0,<2"],
    },
    entry_points={"console_scripts": ["swfp-zoo = sb3_swfp.zoo:main"]},
    license="MIT",
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
