# A small run of the mapping churn benchmark (bench/mapping_churn.py): it must
# complete (every request acked, table sizes right); its times are printed
# as bench: lines and never asserted.
. ./lib.sh
load_module
python3 ../../bench/mapping_churn.py --sizes 100,20000 --ops 100 --samples 50 --prefix 'bench: '
