namespace Parley.Identity;

/// <summary>Topic patterns on API keys: a topic name where <c>*</c> matches any run of characters (<c>room:ci-*</c>).</summary>
public static class TopicPatterns
{
    public const int MaxLength = 200;

    public static bool IsValid(string pattern) =>
        pattern.Length is > 0 and <= MaxLength && !pattern.Any(char.IsWhiteSpace) && !pattern.Any(char.IsControl);

    /// <summary>True when <paramref name="topic"/> matches <paramref name="pattern"/> (null pattern matches everything).</summary>
    public static bool Matches(string? pattern, string topic)
    {
        if (pattern is null)
        {
            return true;
        }
        return Match(pattern.AsSpan(), topic.AsSpan());
    }

    // Glob with '*' only, iterative with one backtrack point: linear in practice, no regex.
    private static bool Match(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text)
    {
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && pattern[p] != '*' && pattern[p] == text[t])
            {
                p++;
                t++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = t;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++mark;
            }
            else
            {
                return false;
            }
        }
        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }
        return p == pattern.Length;
    }
}
