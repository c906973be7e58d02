"""The figures drawn for each model, shared by the rules and by ``cnn_study.figures``.

Importable without matplotlib: rules/common.smk reads it at parse time to name the outputs.
"""

# figure name -> (column of epochs.csv it plots, axis label). Each is written as
# results/figures/{arm}/{model}_{name}.png (shown in the report) and as a PDF.
FIGURES = {
    "accuracy": ("accuracy", "training accuracy"),
    "loss": ("loss", "training loss"),
    "val_accuracy": ("val_accuracy", "validation accuracy"),
    "val_loss": ("val_loss", "validation loss"),
}


def pdf_key(name: str) -> str:
    """The output key of a figure's PDF in rule plot_model_figures; its PNG's key is the figure name."""
    return f"{name}_pdf"


#: The figure that compares the arms (results/figures/arms.png and .pdf): final accuracy per arm and optimizer.
ARM_FIGURE = "arms"
