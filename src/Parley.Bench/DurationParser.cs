using System.Globalization;

namespace Parley.Bench;

/// <summary>Parses durations like <c>10s</c>, <c>500ms</c>, <c>2m</c>, <c>1.5s</c> (a bare number means seconds).</summary>
public static class DurationParser
{
    /// <summary>Parses <paramref name="text"/>; throws <see cref="BenchUsageException"/> naming <paramref name="flag"/> when it is not a duration.</summary>
    public static TimeSpan Parse(string text, string flag)
    {
        var s = text.Trim().ToLowerInvariant();
        (string number, double scale) = s switch
        {
            _ when s.EndsWith("ms", StringComparison.Ordinal) => (s[..^2], 0.001),
            _ when s.EndsWith('s') => (s[..^1], 1.0),
            _ when s.EndsWith('m') => (s[..^1], 60.0),
            _ when s.EndsWith('h') => (s[..^1], 3600.0),
            _ => (s, 1.0),
        };
        if (!double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) || value < 0 || double.IsNaN(value) || value * scale > 86_400)
        {
            throw new BenchUsageException($"{flag} '{text}' is not a duration such as 10s, 500ms or 2m");
        }
        return TimeSpan.FromSeconds(value * scale);
    }
}
