import {
  BarController,
  BarElement,
  CategoryScale,
  Chart,
  Filler,
  Legend,
  LinearScale,
  LineController,
  LineElement,
  PointElement,
  Tooltip,
  type ChartConfiguration,
} from 'chart.js';
import { useEffect, useRef } from 'preact/hooks';

// Only what the console draws, so the bundle carries no unused chart types.
Chart.register(LineController, LineElement, PointElement, BarController, BarElement, CategoryScale, LinearScale, Tooltip, Legend, Filler);

export interface Series {
  label: string;
  values: (number | null)[];
  color: string;
  /** drawn as bars instead of a line */
  bar?: boolean;
  /** on a second axis at the right (counts under a score line) */
  secondary?: boolean;
}

/**
 * A chart with its numbers also in a table: the canvas has a text summary for screen readers,
 * and the same data sits in a collapsible table for keyboard and screen-reader users.
 */
export function TrendChart({ title, labels, series, yMin, yMax }: { title: string; labels: string[]; series: Series[]; yMin?: number; yMax?: number }) {
  const canvas = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    if (!canvas.current) return;
    const hasSecondary = series.some((s) => s.secondary);
    const config: ChartConfiguration = {
      type: 'line',
      data: {
        labels,
        datasets: series.map((s) => ({
          type: s.bar ? 'bar' : 'line',
          label: s.label,
          data: s.values,
          borderColor: s.color,
          backgroundColor: s.bar ? `${s.color}55` : s.color,
          yAxisID: s.secondary ? 'count' : 'y',
          spanGaps: true,
          tension: 0.25,
          pointRadius: 2,
        })) as ChartConfiguration['data']['datasets'],
      },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: 'index', intersect: false },
        scales: {
          y: { min: yMin, max: yMax, position: 'left' },
          ...(hasSecondary ? { count: { position: 'right', beginAtZero: true, grid: { drawOnChartArea: false } } } : {}),
        },
      },
    };
    const chart = new Chart(canvas.current, config);
    return () => chart.destroy();
  }, [JSON.stringify({ labels, series, yMin, yMax })]);

  const summary = `${title}: ${labels.length} points from ${labels[0] ?? '—'} to ${labels[labels.length - 1] ?? '—'}`;
  return (
    <figure class="chart">
      <figcaption>{title}</figcaption>
      <div class="canvas-box">
        <canvas ref={canvas} role="img" aria-label={summary} data-points={labels.length} />
      </div>
      <details>
        <summary>Show the numbers</summary>
        <table>
          <thead>
            <tr>
              <th scope="col">Period</th>
              {series.map((s) => (
                <th scope="col">{s.label}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {labels.map((l, i) => (
              <tr>
                <th scope="row">{l}</th>
                {series.map((s) => (
                  <td>{s.values[i] == null ? '—' : String(Math.round(s.values[i]! * 1000) / 1000)}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </table>
      </details>
    </figure>
  );
}
