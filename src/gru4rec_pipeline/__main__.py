import sys

from gru4rec_pipeline.cli import main

sys.exit(main())
