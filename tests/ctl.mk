# placeholder: the ctl front-end fragment is being written
