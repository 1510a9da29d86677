# bench/compare/plots.gp: the two plots of bench/compare/run.sh, drawn by gnuplot (Debian's
# gnuplot-nox) from the data files run.sh writes. Called as
#   gnuplot -e "conns_dat='A'; conns_svg='B'; held_dat='C'; held_svg='D'; subtitle='E'" plots.gp
# conns_dat: three blocks (genserv, webdis, nginx) of "connections median min max" (req/s);
# held_dat: "held-calls rss-median min max peak-median min max" (MB).
# Points are medians over the rounds; the bars span min to max. Each plot is drawn only when
# its pair of variables is given: a scenario run (--scenario http-64, held-10000) has the
# data of one plot at most.

set terminal svg size 860,500 dynamic enhanced font "sans,12" background rgb "white"
set grid lc rgb "#dddddd"
set key below
set style line 1 lc rgb "#1b6ac9" lw 2 pt 7 ps 0.8
set style line 2 lc rgb "#d6461f" lw 2 pt 5 ps 0.8
set style line 3 lc rgb "#2e8b57" lw 2 pt 9 ps 0.9
set style line 4 lc rgb "#888888" lw 1 dt 2

if (exists("conns_svg")) {
set output conns_svg
set title "HTTP throughput against keep-alive connections (wrk -t2)\n{/*0.8 ".subtitle."}"
set logscale x 2
set xrange [11:6000]
set xtics ("16" 16, "64" 64, "256" 256, "1,024" 1024, "4,096" 4096)
set xlabel "connections"
set ylabel "answered requests/s (2xx only)"
set yrange [0:*]
set format y "%.0s%c"
plot conns_dat index 0 using 1:2:3:4 with yerrorlines ls 1 title "genserv POST /call get\\_count", \
     conns_dat index 1 using 1:2:3:4 with yerrorlines ls 2 title "webdis GET /INCR/counter (+ redis)", \
     conns_dat index 2 using 1:2:3:4 with yerrorlines ls 3 title "nginx constant 200 to a POST"
}

if (exists("held_svg")) {
set output held_svg
set title "genserv memory against held /call requests (one batcher, released by one flush)\n{/*0.8 ".subtitle."}"
unset logscale x
set autoscale x
# Room for the 100 MB target line and a margin right of the largest point.
stats held_dat using 1 nooutput
xmax = STATS_max * 1.05
stats held_dat using 7 nooutput
ymax = (STATS_max > 100 ? STATS_max : 100) * 1.1
set xrange [0:xmax]
set xtics auto
set format x "%.0f"
set format y "%.0f"
set xlabel "calls held at once"
set ylabel "resident set size (MB)"
set yrange [0:ymax]
set arrow 1 from graph 0, first 100 to graph 1, first 100 nohead ls 4
set arrow 2 from first 10000, graph 0 to first 10000, graph 1 nohead ls 4
set label 1 "target at 10,000 held calls: < 100 MB" at first 10000, first 100 right offset -1,0.8 tc rgb "#666666"
plot held_dat using 1:2:3:4 with yerrorlines ls 1 title "RSS while the calls are held", \
     held_dat using 1:5:6:7 with yerrorlines ls 2 title "peak RSS (through the flush)"
}
