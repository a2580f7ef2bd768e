"""`vaekit generate`: draw, walk and reconstruct images (sample, interpolate, reconstruct)."""

# No ``from __future__ import annotations``: see vaekit.commands.common.

import math
from pathlib import Path
from typing import Annotated

import typer

from vaekit.commands.common import (
    MAX_NCOL,
    DataArgument,
    ModelDir,
    Overwrite,
    console,
    err_console,
    seed_option,
    split_option,
    user_errors,
)


def sample_command(
    model: Annotated[
        Path | None,
        typer.Option(
            "--model",
            "-m",
            help="Run directory (default: the run that encoded the cluster's or --latents' "
            "latents, else runs/latest).",
        ),
    ] = None,
    prior: Annotated[
        bool,
        typer.Option(
            "--prior",
            help="Draw z from the run's prior (the default): the mixture fitted to its "
            "training latents when it has one (runs since vaekit 0.5), else p(z).",
        ),
    ] = False,
    model_prior: Annotated[
        bool,
        typer.Option("--model-prior", help="Draw z from the model's p(z), not the fitted prior."),
    ] = False,
    cluster: Annotated[
        str | None,
        typer.Option(help="Cluster file, or a name: smiling -> clusters/smiling.json."),
    ] = None,
    label: Annotated[str | None, typer.Option(help="Class of a class-conditional model.")] = None,
    n: Annotated[int, typer.Option("-n", help="Number of images.")] = 64,
    seed: seed_option("Random seed.") = 0,
    temperature: Annotated[float, typer.Option(help="Scale of z's standard deviation.")] = 1.0,
    pixels: Annotated[
        str, typer.Option(help="mean: the likelihood's mean image; sample: a draw from it.")
    ] = "mean",
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG grid to write.")] = Path(
        "grid.png"
    ),
    save: Annotated[
        Path | None,
        typer.Option(help="Also save each result: a folder (PNGs), or .npy/.h5 (latents)."),
    ] = None,
    from_image: Annotated[
        Path | None, typer.Option("--from", help="Edit this image along an attribute vector.")
    ] = None,
    add: Annotated[
        list[str] | None, typer.Option(help="With --from: the attribute to add (a label query).")
    ] = None,
    strength: Annotated[float, typer.Option(help="With --from: how far to move.")] = 1.0,
    latents: Annotated[
        Path, typer.Option(help="With --from: the store the attribute vector comes from.")
    ] = Path("latents.h5"),
    ncol: Annotated[int | None, typer.Option(help="Grid columns (default: near square).")] = None,
    overwrite: Annotated[
        bool,
        typer.Option(help="Replace an existing --save file or folder, or a -o that is no PNG."),
    ] = False,
) -> None:
    """Draw images from a cluster, the prior or a class, into a PNG grid."""
    with user_errors():
        if label and not cluster and from_image is None:  # needs only config.json: at once
            from vaekit.runs import check_class_label

            check_class_label(model or Path("runs/latest"), label)
        import numpy as np

        from vaekit.errors import UsageError
        from vaekit.generate import (
            Generated,
            attribute_edit,
            check_png_output,
            check_save_target,
            default_model_dir,
            prior_description,
            read_model_image,
            sample,
            save_samples,
            write_grid,
        )
        from vaekit.runs import open_run

        check_png_output(output, overwrite)
        if ncol is not None and not 1 <= ncol <= MAX_NCOL:
            raise UsageError(f"--ncol must be from 1 to {MAX_NCOL:,}, got {ncol}")
        if not math.isfinite(strength):
            raise UsageError(f"--strength must be a finite number, got {strength}")
        if save is not None:  # every check before any write (the grid comes first)
            check_save_target(save, overwrite=overwrite)
        if from_image is not None:
            if not add:
                raise UsageError("--from needs --add LABEL (e.g. --add smiling)")
            if prior or cluster or label:
                raise UsageError("--from edits an image; leave out --prior, --cluster and --label")
            net = open_run(model or default_model_dir(latents))
            x = read_model_image(net, from_image)
            result = attribute_edit(net, x, latents, add, strengths=(0.0, strength))
            images = np.concatenate([x[None], result.images])
            edit = f"add {' '.join(add)} ×{strength:g}"
            titles = ["original", "recon", edit] if (ncol or 3) == 3 else None
            write_grid(images, output, ncol=ncol or 3, titles=titles)
            console.print(
                f"wrote [bold]{output}[/]: original, reconstruction, {' and '.join(add)} "
                f"at strength {strength}"
            )
            result = Generated(images[1:], result.z)
        else:
            if add:
                raise UsageError("--add needs --from IMAGE (the image to edit)")
            if (prior or model_prior) and cluster:
                raise UsageError("give either --prior/--model-prior or --cluster, not both")
            net = open_run(model or default_model_dir(cluster))
            result = sample(
                net,
                n,
                cluster=cluster,
                label=label,
                seed=seed,
                temperature=temperature,
                pixels=pixels,
                model_prior=model_prior,
            )
            for note in result.warnings:
                err_console.print(f"[yellow]warning:[/] {note}", highlight=False)
            write_grid(result.images, output, ncol=ncol)
            source = f"cluster {cluster}" if cluster else prior_description(net, model_prior)
            if label:
                source += f", class {label}"
            console.print(f"wrote [bold]{output}[/]: {n} samples from {source}")
        if save is not None:
            path, what = save_samples(result, save, overwrite=overwrite)
            console.print(f"saved {what} to [bold]{path}[/]")


def interpolate_command(
    a: Annotated[
        str | None,
        typer.Argument(
            help="Start: image file, store row (latents.h5:123), prior:SEED or cluster."
        ),
    ] = None,
    b: Annotated[str | None, typer.Argument(help="End: as A.")] = None,
    steps: Annotated[int, typer.Option(help="Images between the two ends.")] = 10,
    method: Annotated[str, typer.Option(help="lerp or slerp.")] = "lerp",
    pairs: Annotated[
        int | None, typer.Option(help="Instead of A and B: N walks between random store rows.")
    ] = None,
    latents: Annotated[Path, typer.Option(help="Store for --pairs.")] = Path("latents.h5"),
    seed: seed_option("Seed for --pairs.") = 0,
    label: Annotated[
        str | None,
        typer.Option(help="Class to walk in (class-conditional models only, which need it)."),
    ] = None,
    model: Annotated[
        Path | None,
        typer.Option(
            "--model", "-m", help="Run directory (default: the run that encoded A, else latest)."
        ),
    ] = None,
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG grid to write.")] = Path(
        "walk.png"
    ),
    overwrite: Overwrite = False,
) -> None:
    """Walk through latent space from A to B; end columns are the reconstructions of A and B."""
    with user_errors():
        from vaekit.errors import UsageError
        from vaekit.generate import (
            check_png_output,
            default_model_dir,
            interpolate,
            interpolate_pairs,
            walk_titles,
            write_grid,
        )
        from vaekit.runs import open_run

        check_png_output(output, overwrite)
        if pairs is not None:
            if a is not None or b is not None:
                raise UsageError("give A and B, or --pairs N, not both")
        elif a is None or b is None:
            raise UsageError(
                "give two ends A and B (image files, latents.h5:ROW or clusters), or --pairs N"
            )
        ends = (latents,) if pairs is not None else (a, b)
        net = open_run(model or default_model_dir(*ends))
        if pairs is not None:
            result = interpolate_pairs(net, latents, pairs, steps, method, seed, label)
            rows = pairs
        else:
            result = interpolate(net, a, b, steps, method, label)
            rows = 1
        write_grid(result.images, output, ncol=steps + 2, titles=walk_titles(steps))
        console.print(
            f"wrote [bold]{output}[/]: {rows} × {steps + 2} images ({method}; the end "
            "columns, A and B, are their reconstructions)"
        )


def reconstruct_command(
    data: DataArgument = None,
    n: Annotated[int, typer.Option("-n", help="Number of images.")] = 32,
    seed: seed_option("Seed for choosing the images.") = 0,
    split: split_option() = None,
    model: ModelDir = Path("runs/latest"),
    output: Annotated[Path, typer.Option("--output", "-o", help="PNG grid to write.")] = Path(
        "recon.png"
    ),
    overwrite: Overwrite = False,
) -> None:
    """Originals beside their reconstructions, with the run's preprocessing."""
    with user_errors():
        from vaekit.generate import check_png_output, reconstruct, side_by_side, write_grid
        from vaekit.runs import open_run

        check_png_output(output, overwrite)
        net = open_run(model)
        originals, recon = reconstruct(net, data, n=n, seed=seed, split=split)
        pairs = min(8, len(originals))
        write_grid(
            side_by_side(originals, recon),
            output,
            ncol=2 * pairs,
            titles=["input", "recon"] * pairs,
            group=2,
        )
        console.print(
            f"wrote [bold]{output}[/]: {len(originals)} originals, each beside its reconstruction"
        )
