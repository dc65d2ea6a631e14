namespace Parley.Terminal.Tests;

/// <summary><see cref="TerminalText.PlainLine"/>: terminal output as the plain text a log line holds.</summary>
public sealed class TerminalTextTests
{
    [Theory]
    [InlineData("\u001b[1;32mok\u001b[0m done", "ok done")] // SGR colours
    [InlineData("\u001b]0;title\u0007prompt$ ", "prompt$")] // OSC window title ended by BEL
    [InlineData("\u001b]8;;https://x.example\u001b\\link\u001b]8;;\u001b\\", "link")] // OSC 8 hyperlink ended by ST
    [InlineData("\u001b7saved\u001b8", "saved")] // DECSC / DECRC
    [InlineData("\u001b=keypad\u001b>", "keypad")] // DECKPAM / DECKPNM
    [InlineData("\u001b(Bascii\u001b#8", "ascii")] // charset designation, DECALN (intermediate byte escapes)
    [InlineData("\u001bcreset", "reset")] // RIS
    [InlineData("\u001bMup", "up")] // reverse index
    [InlineData("10%\r50%\r100%", "100%")] // a progress bar keeps its last state
    [InlineData("line\r", "line")] // CRLF output
    [InlineData("\tindented\t  ", "\tindented")] // tabs stay, trailing space goes
    [InlineData("bell\u0007 and\u0008 back", "bell and back")] // other control characters go
    [InlineData("h\u00e9llo \u4e16\u754c", "h\u00e9llo \u4e16\u754c")] // text is left as it is
    public void Escape_sequences_and_control_characters_are_removed(string raw, string expected)
    {
        Assert.Equal(expected, TerminalText.PlainLine(raw));
    }

    [Fact]
    public void A_line_of_only_escape_sequences_is_empty()
    {
        Assert.Equal("", TerminalText.PlainLine("\u001b[2J\u001b[H\u001b[?25l"));
    }
}
