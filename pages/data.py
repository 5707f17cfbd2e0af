"""Data: choose the images and the simulated labels, and look at them."""

import streamlit as st

from app import frame, loaders, navigation, state
from app.views import data as view
from app.widgets import describe_data, plain
from mlcore.datasets import DatasetUnavailable

frame.page_frame(__file__)
st.title("Data")
st.caption(
    "Pick the images, how many, their size and how often the random 'indoor' tag is drawn. "
    "Cats and dogs get the labels dog, cat and indoor; your own images get one label per class folder "
    "and indoor, or the labels of their labels.csv."
)
if notice := state.data_notice():
    st.info(notice, icon=":material/info:")
view.data_settings()

config = state.data_config()
st.markdown(f"Current data: {describe_data(config)}")
if config.source in ("zip", "folder") and loaders.has_annotations(config):
    view.label_options(config)  # before the data: a choice here can be what makes the data usable
if config.source == "demo":
    st.warning(view.SYNTHETIC_NOTE, icon=":material/draw:")
if config.source == "real" and loaders.real_dataset_path(config) is None:
    view.real_dataset_missing()
else:
    try:
        view.data_overview(loaders.data_overview(config))
    except (DatasetUnavailable, ValueError, OSError) as error:  # offline, bad folder, unreadable files
        st.error(plain(str(error)))
        st.button(
            "Use the demo set instead", on_click=state.use_demo_data, key=state.widget_key("data", "fallback_demo")
        )
    else:
        navigation.page_link("pages/train.py")
